"""SHA-256 and HMAC-SHA256 of csrc/common/auth.c (what proves the run's secret over TCP)
against their published test vectors (FIPS 180-4's examples, RFC 4231's cases) and against
Python's hashlib on random inputs of every length around a block's."""

import hashlib
import hmac
import random

import cffi
import pytest

from tansiv.run import cheader

ffi = cffi.FFI()
ffi.cdef("""
void tsv_sha256(const void *data, size_t len, uint8_t out[32]);
void tsv_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                     uint8_t out[32]);
""")


@pytest.fixture(scope="module")
def lib():
    return cheader.open_library(ffi, "tansiv-hub")  # auth.c is linked into the hub


def sha256(lib, data: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.tsv_sha256(data, len(data), out)
    return bytes(out)


def hmac_sha256(lib, key: bytes, msg: bytes) -> bytes:
    out = ffi.new("uint8_t[32]")
    lib.tsv_hmac_sha256(key, len(key), msg, len(msg), out)
    return bytes(out)


@pytest.mark.parametrize("data,digest", [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
])
def test_sha256_gives_fips_180_examples(lib, data, digest):
    assert sha256(lib, data).hex() == digest


@pytest.mark.parametrize("key,msg,mac", [  # RFC 4231, test cases 1, 2, 3, 6, 7
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
])
def test_hmac_sha256_gives_rfc_4231_cases(lib, key, msg, mac):
    assert hmac_sha256(lib, key, msg).hex() == mac


def test_both_agree_with_hashlib_around_block_boundaries(lib):
    rng = random.Random(5)
    for n in list(range(0, 200)) + [1000, 4096, 65537]:
        data = rng.randbytes(n)
        key = rng.randbytes(rng.choice([0, 16, 64, 65, 100]))
        assert sha256(lib, data) == hashlib.sha256(data).digest(), n
        assert hmac_sha256(lib, key, data) == hmac.new(key, data, hashlib.sha256).digest(), n
