"""The gRPC API: servicer, validation, protobuf conversion, error mapping. No SQL here."""
