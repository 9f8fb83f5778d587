"""How revert commits are signed: an SSH key as it is, an OpenPGP key imported into a keyring of our own."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PGP_MARKER = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


class SigningUnavailable(Exception):
    """The signing key cannot be used; the message names the setting and the fix."""


@dataclass(frozen=True)
class Signing:
    """`git -c <config> commit --gpg-sign=<key_id>` with `env`: what signs one revert commit."""

    config: tuple[str, ...]
    key_id: str
    env: dict[str, str] = field(default_factory=dict)


def signing_for(key_file: Path, keyring: Path) -> Signing:
    """SSH keys sign as they are (gpg.format=ssh); an armored OpenPGP key is imported into `keyring` first."""
    try:
        head = key_file.read_text(encoding="utf-8", errors="replace")[:200]
    except OSError as exc:
        raise SigningUnavailable(
            f"WATCHER_REVERT__SIGNING_KEY_FILE: cannot read {key_file} ({exc.strerror}); mount the key there"
        ) from None
    if PGP_MARKER not in head:
        return Signing(("gpg.format=ssh", f"user.signingKey={key_file}"), str(key_file))
    keyring.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = ["gpg", "--batch", "--homedir", str(keyring)]
    try:
        shown = _run([*gpg, "--with-colons", "--import-options", "show-only", "--import", str(key_file)])
        _run([*gpg, "--import", str(key_file)])
    except FileNotFoundError:
        raise SigningUnavailable(
            "WATCHER_REVERT__SIGNING_KEY_FILE: an OpenPGP key needs gpg in the image; use an SSH key instead"
        ) from None
    fingerprints = [line.split(":")[9] for line in shown.splitlines() if line.startswith("fpr:")]
    if not fingerprints:
        raise SigningUnavailable(f"WATCHER_REVERT__SIGNING_KEY_FILE: {key_file} holds no OpenPGP key gpg can read")
    fingerprint = fingerprints[0]
    return Signing(("gpg.format=openpgp", f"user.signingKey={fingerprint}"), fingerprint, {"GNUPGHOME": str(keyring)})


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SigningUnavailable(f"WATCHER_REVERT__SIGNING_KEY_FILE: gpg refused the key: {done.stderr.strip()[:200]}")
    return done.stdout
