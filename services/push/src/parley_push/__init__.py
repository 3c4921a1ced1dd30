"""Parley push: device push data, managed push through the providers, signed payloads."""
