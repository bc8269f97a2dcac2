"""Which JWT libraries verify the gateway's access tokens, for each signing algorithm.

``python -m bench.jwt_interop`` issues one token per algorithm (RS256, ES256, Ed25519) with
the gateway's own ``KeyStore`` and ``TokenIssuer``, then asks each library to verify it with
nothing but the published JWKS, the issuer and the audience, as a resource server would:

* Python, in this process: PyJWT (``PyJWK``, what ``PyJWKClient`` uses), jwcrypto, joserfc,
  authlib's ``authlib.jose``;
* Node.js (``node`` and the npm registry needed): jose and jsonwebtoken, installed with npm
  into a temporary directory at run time;
* Go (Debian's ``golang-go``, ``golang-github-golang-jwt-jwt-dev`` and
  ``golang-gopkg-square-go-jose.v2-dev``): golang-jwt/jwt and go-jose, built against the
  Debian sources (no module proxy needed).

A library or toolchain that is missing is reported as such, not guessed. Prints a markdown
table (the one in docs/operations.md, "Token signing") and writes
``bench/results/jwt_interop.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import write_results
from gateway.auth.clients import ClientInfo
from gateway.auth.keys import SIGNING_ALGORITHMS, KeyStore
from gateway.auth.tokens import TokenIssuer

HERE = Path(__file__).resolve().parent
ISSUER = "https://gateway.example.gov.cn"
AUDIENCE = "zhengfa-gateway"
NPM_PACKAGES = ["jose@6", "jsonwebtoken@9"]
GO_SOURCES = Path("/usr/share/gocode/src")
GO_MOD = """module interop

go 1.19

require (
\tgithub.com/golang-jwt/jwt/v4 v4.0.0
\tgopkg.in/square/go-jose.v2 v2.0.0
\tgolang.org/x/crypto v0.0.0
)

replace (
\tgithub.com/golang-jwt/jwt/v4 => {src}/github.com/golang-jwt/jwt
\tgopkg.in/square/go-jose.v2 => {jose}
\tgolang.org/x/crypto => {src}/golang.org/x/crypto
\tgolang.org/x/net => {src}/golang.org/x/net
\tgolang.org/x/sys => {src}/golang.org/x/sys
\tgolang.org/x/term => {src}/golang.org/x/term
\tgolang.org/x/text => {src}/golang.org/x/text
)
"""


def make_cases(workdir: Path) -> list[dict[str, Any]]:
    client = ClientInfo(
        "gw-interop", "interop", "FY640104", frozenset({"exchange"}), False, None, None
    )
    cases = []
    for alg in SIGNING_ALGORITHMS:
        keys = KeyStore(workdir / f"{alg}.json", token_ttl_seconds=3600, algorithm=alg)
        keys.ensure()
        issuer = TokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=3600)
        token = issuer.issue(client, ["exchange"])["access_token"]
        cases.append(
            {"alg": alg, "token": token, "jwks": keys.public_jwks(), "issuer": ISSUER,
             "audience": AUDIENCE}
        )  # fmt: skip
    return cases


def _verdict(check: Callable[[], Any]) -> str:
    try:
        check()
    except Exception as exc:  # any refusal is the finding
        return f"no: {type(exc).__name__}: {exc}"[:160]
    return "ok"


def python_verdicts(case: dict[str, Any]) -> dict[str, str]:
    import warnings

    import jwt as pyjwt

    with warnings.catch_warnings():  # authlib.jose is deprecated for joserfc; still common
        warnings.simplefilter("ignore")
        from authlib.jose import JsonWebKey
        from authlib.jose import jwt as authlib_jwt
    from joserfc import jwt as joserfc_jwt
    from joserfc.jwk import KeySet
    from jwcrypto import jwk as jwcrypto_jwk
    from jwcrypto import jwt as jwcrypto_jwt

    token, jwks = case["token"], case["jwks"]

    def pyjwt_check() -> None:
        key = pyjwt.PyJWKSet.from_dict(jwks)[pyjwt.get_unverified_header(token)["kid"]]
        pyjwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=AUDIENCE,
                     issuer=ISSUER)  # fmt: skip

    def jwcrypto_check() -> None:
        jwcrypto_jwt.JWT(
            jwt=token, key=jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks)),
            check_claims={"iss": ISSUER, "aud": AUDIENCE},
        )  # fmt: skip

    def joserfc_check() -> None:
        joserfc_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[case["alg"]])

    def authlib_check() -> None:
        claims = authlib_jwt.decode(token, JsonWebKey.import_key_set(jwks))
        claims.validate()

    return {
        "PyJWT": _verdict(pyjwt_check),
        "jwcrypto": _verdict(jwcrypto_check),
        "joserfc": _verdict(joserfc_check),
        "authlib.jose": _verdict(authlib_check),
    }


def _lines(output: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def node_verdicts(workdir: Path, cases_file: Path) -> tuple[dict[str, dict[str, str]], str]:
    if not (shutil.which("node") and shutil.which("npm")):
        return {}, "node or npm missing"
    libs = workdir / "node"
    installed = subprocess.run(
        ["npm", "install", "--silent", "--prefix", str(libs), *NPM_PACKAGES],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if installed.returncode:
        return {}, f"npm install failed: {installed.stderr.strip()[:200]}"
    versions = ", ".join(
        f"{name} {_npm_version(libs / 'node_modules' / name)}" for name in ("jose", "jsonwebtoken")
    )
    ran = subprocess.run(
        ["node", str(HERE / "verify.mjs"), str(cases_file)],
        capture_output=True, text=True, timeout=120, check=False,
        env={"NODE_LIBS": str(libs / "node_modules"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    if ran.returncode:
        return {}, f"node failed: {ran.stderr.strip()[:300]}"
    return {row.pop("alg"): row for row in _lines(ran.stdout)}, f"Node.js, {versions}"


def _npm_version(package: Path) -> str:
    return str(json.loads((package / "package.json").read_text())["version"])


def go_verdicts(workdir: Path, cases_file: Path) -> tuple[dict[str, dict[str, str]], str]:
    needed = [GO_SOURCES / "github.com/golang-jwt/jwt", GO_SOURCES / "gopkg.in/square/go-jose.v2"]
    if not shutil.which("go") or not all(p.is_dir() for p in needed):
        return {}, "go or the Debian Go library sources missing"
    module = workdir / "go"
    module.mkdir()
    shutil.copy(HERE / "verify.go", module / "main.go")
    # Debian ships go-jose v2 without a go.mod (it predates modules): give a copy one.
    jose = workdir / "go-jose.v2"
    shutil.copytree(GO_SOURCES / "gopkg.in/square/go-jose.v2", jose)
    if not (jose / "go.mod").exists():
        (jose / "go.mod").write_text("module gopkg.in/square/go-jose.v2\n\ngo 1.12\n")
    (module / "go.mod").write_text(GO_MOD.format(src=GO_SOURCES, jose=jose))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "GOFLAGS": "-mod=mod",
           "GOPROXY": "off", "GONOSUMDB": "*", "GOCACHE": str(workdir / "gocache"),
           "GOPATH": str(workdir / "gopath")}  # fmt: skip
    ran = subprocess.run(
        ["go", "run", ".", str(cases_file)], cwd=module, capture_output=True, text=True,
        timeout=600, check=False, env=env,
    )  # fmt: skip
    if ran.returncode:
        return {}, f"go failed: {ran.stderr.strip()[:300]}"
    version = subprocess.run(["go", "version"], capture_output=True, text=True, check=False)
    return (
        {row.pop("alg"): row for row in _lines(ran.stdout)},
        f"{version.stdout.strip()}, golang-jwt {_debian('golang-github-golang-jwt-jwt-dev')}, "
        f"go-jose {_debian('golang-gopkg-square-go-jose.v2-dev')} (Debian)",
    )


def _debian(package: str) -> str:
    shown = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return shown.stdout.strip() or "?"


def _short(verdict: str) -> str:
    return "yes" if verdict == "ok" else "**no**"


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jwt-interop-") as tmp:
        workdir = Path(tmp)
        cases = make_cases(workdir)
        cases_file = workdir / "cases.json"
        cases_file.write_text(json.dumps(cases))
        table: dict[str, dict[str, str]] = {c["alg"]: python_verdicts(c) for c in cases}
        python_versions = ", ".join(
            f"{name} {importlib.metadata.version(dist)}"
            for name, dist in (("PyJWT", "PyJWT"), ("jwcrypto", "jwcrypto"),
                               ("joserfc", "joserfc"), ("authlib", "Authlib"))
        )  # fmt: skip
        notes = [f"Python: {python_versions}"]
        for run in (node_verdicts, go_verdicts):
            verdicts, note = run(workdir, cases_file)
            notes.append(note)
            for alg, row in verdicts.items():
                table[alg].update(row)
    libraries = list(dict.fromkeys(lib for row in table.values() for lib in row))
    print("| library | " + " | ".join(table) + " |")
    print("| --- | " + " | ".join("---" for _ in table) + " |")
    for lib in libraries:
        print(
            f"| {lib} | "
            + " | ".join(_short(table[alg].get(lib, "not run")) for alg in table)
            + " |"
        )
    print()
    for note in notes:
        print(f"- {note}")
    print()
    for alg, row in table.items():
        for lib, verdict in row.items():
            if verdict != "ok":
                print(f"- {alg} / {lib}: {verdict}")
    write_results("jwt_interop", {"verdicts": table, "notes": notes})
    return 0
