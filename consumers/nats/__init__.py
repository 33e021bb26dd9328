"""JetStream fan-out: the publisher (the log → stream ``LEDGER``) and an example pull consumer."""
