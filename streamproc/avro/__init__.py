"""Avro: schema loading and annotation reading (schema.py); wire codecs live beside them."""
