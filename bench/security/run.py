"""What signing costs per message: signing a request (Ed25519 over its bytes) and admitting it at the
worker's gate (spelling, key, signature, window, nonce, role).

    .venv/bin/python -m bench.security.run --messages 5000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from processor.security.gate import Gate
from processor.security.keys import Keyring, SigningKey, new_keyring
from processor.security.signature import Kind, signed_headers


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    n = parser.parse_args().messages
    keyring_file, files = new_keyring(Path(tempfile.mkdtemp()) / "keys", {"olivia": ["operator"]})
    key, gate = SigningKey.load(files["olivia"]), Gate(Keyring.load(keyring_file), 300_000)
    body, now = b"x" * 400, int(time.time() * 1000)
    started = time.perf_counter()
    signed = [signed_headers(key, Kind.REQUEST, body, now) for _ in range(n)]  # a fresh nonce each
    signing = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for headers in signed:
        gate.admit(Kind.REQUEST, body, headers, now, ["operator"])
    admitting = (time.perf_counter() - started) / n
    print(f"{n} messages: sign {signing * 1e6:.0f} us, admit {admitting * 1e6:.0f} us per message")


if __name__ == "__main__":
    main()
