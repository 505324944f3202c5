"""Pieces both HTTP services share: auth, body-size limit, error mapping, metrics."""
