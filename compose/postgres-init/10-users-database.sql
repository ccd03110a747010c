-- Run once by the postgres image on an empty data volume: the user-service's database
-- beside the audit database (POSTGRES_DB), as `make up` has them on one server.
CREATE DATABASE users;
