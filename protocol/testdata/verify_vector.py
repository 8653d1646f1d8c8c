"""Checks signed_price.json with independent implementations (coincurve, pycryptodome):
the signed-bytes layout, the keccak256 digest, and that ecrecover names the address.
Usage: python3 verify_vector.py [path]   (pip install coincurve pycryptodome)"""
import json
import sys
from pathlib import Path

from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak

path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("signed_price.json")
v = json.loads(path.read_text())


def unhex(text):
    assert text.startswith("0x"), text
    return bytes.fromhex(text[2:])


def keccak256(data):
    return keccak.new(digest_bits=256, data=data).digest()


signed = unhex(v["signed_bytes"])
expected = (
    b"price-oracle:v1\n"
    + unhex(v["network_id"])
    + int(v["id"], 16).to_bytes(16, "big")
    + v["feed"].encode().ljust(16, b"\0")
    + v["price"].to_bytes(16, "big")
    + bytes([v["decimals"]])
    + v["observed_at_ms"].to_bytes(8, "big")
)
assert signed == expected, "signed bytes differ from the documented layout"
assert keccak256(signed) == unhex(v["digest"]), "digest is not keccak256(signed_bytes)"
signature = unhex(v["signature"])
assert len(signature) == 65 and signature[64] in (27, 28), "signature is not r||s||v with v 27/28"
recovered = PublicKey.from_signature_and_message(
    signature[:64] + bytes([signature[64] - 27]), unhex(v["digest"]), hasher=None
)
address = "0x" + keccak256(recovered.format(compressed=False)[1:])[12:].hex()
assert address == v["address"].lower(), f"ecrecover names {address}, not {v['address']}"
assert PrivateKey(unhex(v["private_key"])).public_key.format() == recovered.format()
print(f"signed_price.json verified independently: signer {address}")
