"""The Sei dex protocol: protobuf messages, sdk.Dec encoding, signed transactions, adapter."""
