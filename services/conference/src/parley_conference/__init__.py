"""Parley conference: rooms of many participants, mixed on the replica that holds them."""
