"""Pydantic models and service classes as protobuf: what a service class declares
(:mod:`.service`), the descriptors built for it without protoc (:mod:`.schema`), and the
message codecs for binary and JSON (:mod:`.message`, over :mod:`.pbconvert` and
:mod:`.jsonmap`). The server and the client share all of it.
"""
