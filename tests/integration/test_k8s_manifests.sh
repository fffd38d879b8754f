#!/usr/bin/env bash
# The Kubernetes files of docs/kubernetes.md (deploy/kubernetes/), linted here
# without a cluster (Kubernetes is not in Debian 12): the YAML is read by a
# small parser of the block subset the files use (no PyYAML) and checked
# against the RuntimeClass (node.k8s.io/v1) and Pod (v1) schemas for the fields
# they set; the RuntimeClass handler must be the runtime name in the containerd
# snippet, which containerd itself must accept (`containerd config dump`, no
# daemon), with the runc shim and an absolute BinaryName; silo-oci's settings
# file must load (silo-oci reads it); and docs/kubernetes.md must show the same
# files. TAP on stdout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
K="$S/deploy/kubernetes"
N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else notok "$d"; fi; }
command -v python3 > /dev/null || { echo "1..0 # SKIP python3 not installed"; exit 0; }
TMP=$(mktemp -d /tmp/silo-k8s.XXXXXX)
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT

cat > "$TMP/lint.py" <<'PY'
import re, sys

def parse(text):
    """The block subset of YAML the manifests use: mappings, sequences of
    mappings or scalars, plain/quoted scalars, flow sequences of scalars,
    comments. Anything else is an error naming the line."""
    lines = []
    for n, raw in enumerate(text.split("\n"), 1):
        s = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not s.strip() or s.strip() == "---":
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {n}: tab in indentation")
        lines.append((n, len(s) - len(s.lstrip()), s.strip()))
    pos = [0]

    def scalar(v, n):
        if v.startswith('"'):
            if not v.endswith('"') or len(v) < 2:
                raise ValueError(f"line {n}: unterminated string")
            return v[1:-1]
        if v.startswith("["):
            if not v.endswith("]"):
                raise ValueError(f"line {n}: unterminated flow sequence")
            inner = v[1:-1].strip()
            return [scalar(x.strip(), n) for x in re.findall(r'"[^"]*"|[^,]+', inner)] if inner else []
        if v.startswith(("{", "&", "*", "!", "|", ">")):
            raise ValueError(f"line {n}: unsupported YAML: {v[:20]}")
        return v

    def block(ind):
        n, i, s = lines[pos[0]]
        if s.startswith("- "):
            out = []
            while pos[0] < len(lines) and lines[pos[0]][1] == ind and lines[pos[0]][2].startswith("- "):
                n, i, s = lines[pos[0]]
                item = s[2:]
                if re.match(r"^[A-Za-z0-9_.\-/]+:( |$)", item):
                    lines[pos[0]] = (n, ind + 2, item)
                    out.append(block(ind + 2))
                else:
                    pos[0] += 1
                    out.append(scalar(item, n))
            return out
        out = {}
        while pos[0] < len(lines) and lines[pos[0]][1] == ind:
            n, i, s = lines[pos[0]]
            m = re.match(r'^("?[A-Za-z0-9_.\-/]+"?):(?: (.*))?$', s)
            if not m:
                raise ValueError(f"line {n}: expected key: value, got {s!r}")
            k = m.group(1).strip('"')
            if k in out:
                raise ValueError(f"line {n}: duplicate key {k}")
            pos[0] += 1
            if m.group(2):
                out[k] = scalar(m.group(2).strip(), n)
            elif pos[0] < len(lines) and lines[pos[0]][1] > ind:
                out[k] = block(lines[pos[0]][1])
            elif pos[0] < len(lines) and lines[pos[0]][1] == ind and lines[pos[0]][2].startswith("- "):
                out[k] = block(ind)
            else:
                out[k] = None
        if pos[0] < len(lines) and lines[pos[0]][1] > ind:
            raise ValueError(f"line {lines[pos[0]][0]}: bad indentation")
        return out

    doc = block(0)
    if pos[0] != len(lines):
        raise ValueError(f"line {lines[pos[0]][0]}: unexpected content")
    return doc

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUB = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
QTY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

def need(cond, msg):
    if not cond:
        raise ValueError(msg)

def only(obj, keys, where):
    extra = set(obj) - set(keys)
    need(not extra, f"{where}: unknown fields {sorted(extra)}")

def runtimeclass(d):
    only(d, ["apiVersion", "kind", "metadata", "handler", "overhead", "scheduling"], "RuntimeClass")
    need(d["apiVersion"] == "node.k8s.io/v1", "apiVersion: expected node.k8s.io/v1")
    need(d["kind"] == "RuntimeClass", "kind: expected RuntimeClass")
    need(DNS_SUB.match(d["metadata"]["name"]), "metadata.name: not a DNS subdomain")
    need(DNS_LABEL.match(d["handler"]), "handler: not a DNS label")
    for k, v in (d.get("overhead") or {}).get("podFixed", {}).items():
        need(k in ("cpu", "memory"), f"overhead.podFixed.{k}: expected cpu or memory")
        need(QTY.match(v), f"overhead.podFixed.{k}: {v!r} is not a quantity")
    for k, v in ((d.get("scheduling") or {}).get("nodeSelector") or {}).items():
        need(LABEL_KEY.match(k) and isinstance(v, str), f"scheduling.nodeSelector.{k}: bad label")
    return d["metadata"]["name"], d["handler"]

def pod(d, rc_name):
    only(d, ["apiVersion", "kind", "metadata", "spec"], "Pod")
    need(d["apiVersion"] == "v1" and d["kind"] == "Pod", "apiVersion/kind: expected v1 Pod")
    need(DNS_SUB.match(d["metadata"]["name"]), "metadata.name: not a DNS subdomain")
    for k, v in (d["metadata"].get("annotations") or {}).items():
        need(isinstance(v, str), f"metadata.annotations.{k}: expected a string")
    spec = d["spec"]
    need(spec.get("runtimeClassName") == rc_name, f"spec.runtimeClassName: expected {rc_name}")
    need(spec.get("restartPolicy", "Always") in ("Always", "OnFailure", "Never"), "spec.restartPolicy")
    need(isinstance(spec.get("containers"), list) and spec["containers"], "spec.containers: expected a list")
    for i, c in enumerate(spec["containers"]):
        only(c, ["name", "image", "command", "args", "env", "resources", "workingDir"], f"spec.containers[{i}]")
        need(DNS_LABEL.match(c["name"]), f"spec.containers[{i}].name")
        need(isinstance(c["image"], str) and c["image"], f"spec.containers[{i}].image")
        for f in ("command", "args"):
            need(f not in c or isinstance(c[f], list), f"spec.containers[{i}].{f}: expected a list")
        for kind in (c.get("resources") or {}).values():
            for k, v in kind.items():
                need(QTY.match(v), f"spec.containers[{i}].resources: {k}={v!r}")

rc_name, handler = runtimeclass(parse(open(sys.argv[1]).read()))
pod(parse(open(sys.argv[2]).read()), rc_name)
print(handler)
PY

handler=$(python3 "$TMP/lint.py" "$K/runtimeclass.yaml" "$K/pod.yaml" 2>&1); rc=$?
check "runtimeclass.yaml and pod.yaml parse and match the RuntimeClass and Pod schemas ($handler)" test $rc = 0
# a broken copy must fail: the linter is not a rubber stamp
sed 's/^handler: silo/handler: Silo_Runtime/' "$K/runtimeclass.yaml" > "$TMP/bad.yaml"
check "the linter refuses a handler that is not a DNS label" bash -c "! python3 '$TMP/lint.py' '$TMP/bad.yaml' '$K/pod.yaml' 2> /dev/null"
sed 's/runtimeClassName: silo/runtimeClassName: other/' "$K/pod.yaml" > "$TMP/bad-pod.yaml"
check "the linter refuses a pod naming another RuntimeClass" bash -c "! python3 '$TMP/lint.py' '$K/runtimeclass.yaml' '$TMP/bad-pod.yaml' 2> /dev/null"
printf 'apiVersion: v1\n  kind: Pod\n' > "$TMP/bad-indent.yaml"
check "the linter refuses bad indentation" bash -c "! python3 '$TMP/lint.py' '$K/runtimeclass.yaml' '$TMP/bad-indent.yaml' 2> /dev/null"

check "containerd-silo.toml names the runtime handler \"$handler\" with the runc shim and an absolute BinaryName" \
	python3 -c "
import sys, tomllib
c = tomllib.load(open(sys.argv[1], 'rb'))
r = c['plugins']['io.containerd.grpc.v1.cri']['containerd']['runtimes'][sys.argv[2]]
assert c['version'] == 2
assert r['runtime_type'] == 'io.containerd.runc.v2'
assert r['options']['BinaryName'].startswith('/')
assert 'run.silo.provider' in r['pod_annotations']
" "$K/containerd-silo.toml" "$handler"
if command -v containerd > /dev/null; then
	out=$(containerd --config "$K/containerd-silo.toml" config dump 2>&1); rc=$?
	check "containerd accepts containerd-silo.toml (config dump shows the silo runtime)" \
		bash -c "[[ $rc == 0 ]] && grep -q 'runtimes.silo' <<< '$out' && grep -q 'BinaryName = \"/usr/local/bin/silo-oci\"' <<< '$out'"
else
	N=$((N + 1)); echo "ok $N - containerd accepts the snippet # SKIP containerd not installed"
fi
check "silo-oci loads oci.toml (features shows the settings in effect)" \
	bash -c "SILO_OCI_CONFIG='$K/oci.toml' '$B/runtime/silo-oci' features | grep -q '\"io.github.silo.oci.fallback\": \"kvm,qemu,namespace\"'"
printf 'provider = 3\n' > "$TMP/bad.toml"
check "... and refuses a bad one, naming the key" \
	bash -c "SILO_OCI_CONFIG='$TMP/bad.toml' '$B/runtime/silo-oci' features 2>&1 | grep -q 'bad.toml:1: provider'"
check "docs/kubernetes.md shows these files as they are" python3 -c "
import sys
doc = open(sys.argv[1]).read()
for f in sys.argv[2:]:
    body = ''.join(l for l in open(f) if not l.startswith('#'))
    assert body.strip() in doc, f
" "$S/docs/kubernetes.md" "$K/runtimeclass.yaml" "$K/containerd-silo.toml"
exit $FAILED
