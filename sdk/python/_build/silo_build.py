# SPDX-License-Identifier: Apache-2.0
"""A PEP 517 build backend in the standard library only.

It packs the `silo` package directory (every .py file and py.typed) into a
pure-Python wheel (PEP 427) or an sdist, with the metadata of pyproject.toml's
[project] table. Nothing is downloaded: `pip install ./sdk/python` works with no
package index, and with build isolation (requires = []).
"""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "silo"


def _project():
    try:
        import tomllib  # 3.11+
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            return tomllib.load(f)["project"]
    except ImportError:  # 3.9/3.10: the few keys this file uses, one per line
        out = {}
        section = None
        with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line
                elif section == "[project]" and "=" in line and line.split("=", 1)[1].strip().startswith('"'):
                    k, v = line.split("=", 1)
                    out[k.strip()] = v.strip().strip('"')
        return out


def _metadata(p):
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nRequires-Python: %s\nLicense: Apache-2.0\n"
            % (p["name"], p["version"], p.get("description", ""), p.get("requires-python", ">=3.9")))


def _files():
    base = os.path.join(ROOT, PKG)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for n in sorted(filenames):
            if n.endswith(".py") or n == "py.typed":
                full = os.path.join(dirpath, n)
                yield full, os.path.relpath(full, ROOT).replace(os.sep, "/")


def _record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    dist = "%s-%s" % (p["name"], p["version"])
    name = dist + "-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        def add(arc, data):
            z.writestr(arc, data)
            records.append("%s,%s,%d" % (arc, _record_hash(data), len(data)))
        for full, arc in _files():
            with open(full, "rb") as f:
                add(arc, f.read())
        add(dist + ".dist-info/METADATA", _metadata(p).encode())
        add(dist + ".dist-info/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: silo_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        records.append(dist + ".dist-info/RECORD,,")
        z.writestr(dist + ".dist-info/RECORD", "\n".join(records) + "\n")
    return name


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    dist = "%s-%s" % (p["name"], p["version"])
    name = dist + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ["pyproject.toml", "_build/silo_build.py"] + [a for _, a in _files()]:
            t.add(os.path.join(ROOT, rel), arcname=dist + "/" + rel)
        info = tarfile.TarInfo(dist + "/PKG-INFO")
        data = _metadata(p).encode()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []
