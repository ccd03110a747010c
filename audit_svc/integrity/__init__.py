"""Tamper evidence: the canonical bytes and the hash chain (`chain`), verification of
stored ranges (`verify`), Ed25519 checkpoint signing (`signer`), and the checkpoint
reads served to external verifiers (`checkpoint_reads`)."""
