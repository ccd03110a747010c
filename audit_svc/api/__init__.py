"""The gRPC face of the audit-service: servicers that convert between protos and
domain calls (`servicer`, `servicer_v1`, `convert`). Domain errors become a
`google.rpc.Status` in `meshkit.rpc`. Nothing else of the service imports grpc."""
