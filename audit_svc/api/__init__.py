"""The gRPC face of the audit-service: servicers that convert between protos and
domain calls (`servicer`, `servicer_v1`, `convert`), and the one place where domain
errors become `google.rpc.Status` (`rpc_errors`). Nothing else imports grpc."""
