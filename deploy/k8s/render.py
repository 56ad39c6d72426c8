#!/usr/bin/env python3
"""A small kustomize for the subset deploy/k8s uses, so the checks need no kubectl.

Supported kustomization fields: ``resources`` (files and nested kustomization directories),
``namespace``, ``nameSuffix``, ``labels`` (with ``includeSelectors``/``includeTemplates``),
``commonAnnotations``, ``images``, ``patches`` (strategic-merge files, matched by kind and
name; containers, env, volumes, ports and mounts merged by their keys) and
``configMapGenerator`` (``files``, with kustomize's content-hash name suffix and the references
to it rewritten). Anything else is refused, so a new field cannot be silently ignored.
tests/deploy/test_k8s.py proves the output equal to ``kubectl kustomize
--load-restrictor LoadRestrictionsNone`` where kubectl is installed.

    python deploy/k8s/render.py deploy/k8s/overlays/prod > prod.yaml
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "nameSuffix",
    "labels",
    "commonAnnotations",
    "images",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# strategic-merge keys of the lists we patch
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not implement, or is broken."""


def render(directory: str | Path) -> list[Doc]:
    """Every resource of the kustomization in ``directory``, transformed."""
    return _build(Path(directory))


def _build(root: Path) -> list[Doc]:
    kfile = root / "kustomization.yaml"
    if not kfile.is_file():
        raise RenderError(f"{root}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in k.get("resources", []):
        path = root / entry
        if path.is_dir():
            docs.extend(_build(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    generated: dict[str, str] = {}
    opts = k.get("generatorOptions", {})
    for gen in k.get("configMapGenerator", []):
        cm = _config_map(root, gen, opts)
        docs.append(cm)
        generated[gen["name"]] = cm["metadata"]["name"]
    for patch in k.get("patches", []):
        _apply_patch(root, docs, patch)
    if "namespace" in k:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d["metadata"]["namespace"] = k["namespace"]
    if "nameSuffix" in k:
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["name"] += k["nameSuffix"]
    for spec in k.get("labels", []):
        for d in docs:
            _labels(d, spec)
    if "commonAnnotations" in k:
        for d in docs:
            d["metadata"].setdefault("annotations", {}).update(k["commonAnnotations"])
            if d["kind"] in WORKLOADS:
                tmeta = d["spec"]["template"].setdefault("metadata", {})
                tmeta.setdefault("annotations", {}).update(k["commonAnnotations"])
    for image in k.get("images", []):
        for d in docs:
            _image(d, image)
    if generated:
        for d in docs:
            _rename_config_maps(d, generated)
    return docs


# --- configMapGenerator ----------------------------------------------------------------------
def _config_map(root: Path, gen: Doc, opts: Doc) -> Doc:
    unknown = set(gen) - {"name", "files"}
    if unknown:
        raise RenderError(f"configMapGenerator {gen.get('name')}: unsupported {sorted(unknown)}")
    data: dict[str, str] = {}
    for f in gen.get("files", []):
        key, sep, path = f.partition("=")
        if not sep:
            key, path = Path(f).name, f
        data[key] = (root / path).read_text()
    cm: Doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": gen["name"]},
        "data": data,
    }
    if not opts.get("disableNameSuffixHash"):
        cm["metadata"]["name"] = f"{gen['name']}-{config_map_hash(data)}"
    return cm


def config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix: sha256 of Go's JSON of {kind, name, data} (kustomize 5 hashes
    the generated map before it has a name, so the name is empty), 10 characters with 0, 1,
    3, a, e replaced (so the suffix never looks like a number or a word)."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(raw, esc)
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_config_maps(d: Doc, names: dict[str, str]) -> None:
    pod = _pod_spec(d)
    if pod is None:
        return
    for v in pod.get("volumes", []):
        cm = v.get("configMap")
        if cm and cm.get("name") in names:
            cm["name"] = names[cm["name"]]
        for src in v.get("projected", {}).get("sources", []):
            ref = src.get("configMap")
            if ref and ref.get("name") in names:
                ref["name"] = names[ref["name"]]
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for e in c.get("envFrom", []):
            ref = e.get("configMapRef")
            if ref and ref.get("name") in names:
                ref["name"] = names[ref["name"]]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref.get("name") in names:
                ref["name"] = names[ref["name"]]


# --- patches ---------------------------------------------------------------------------------
def _apply_patch(root: Path, docs: list[Doc], spec: Doc) -> None:
    if set(spec) != {"path"}:
        raise RenderError(f"{root}: only strategic-merge patch files (path:) are supported")
    for patch in yaml.safe_load_all((root / spec["path"]).read_text()):
        if not patch:
            continue
        kind, name = patch["kind"], patch["metadata"]["name"]
        targets = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
        if len(targets) != 1:
            raise RenderError(f"{root / spec['path']}: no single {kind}/{name} to patch")
        merged = strategic_merge(targets[0], patch)
        targets[0].clear()
        targets[0].update(merged)


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """Maps merge recursively (None deletes); lists with a merge key merge item by item;
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        # kustomize's order: the patch's items (merged into their originals) first, then the
        # originals the patch does not name
        mk = MERGE_KEYS[key]
        named = {item.get(mk) for item in patch}
        out_list = []
        for item in patch:
            match = next((b for b in base if b.get(mk) == item.get(mk)), None)
            out_list.append(copy.deepcopy(item) if match is None else strategic_merge(match, item))
        out_list.extend(copy.deepcopy(b) for b in base if b.get(mk) not in named)
        return out_list
    return copy.deepcopy(patch)


# --- labels ----------------------------------------------------------------------------------
def _labels(d: Doc, spec: Doc) -> None:
    pairs = spec["pairs"]
    d["metadata"].setdefault("labels", {}).update(pairs)
    kind = d["kind"]
    selectors = spec.get("includeSelectors", False)
    templates = spec.get("includeTemplates", False) or selectors
    if kind in WORKLOADS and templates:
        tmeta = d["spec"]["template"].setdefault("metadata", {})
        tmeta.setdefault("labels", {}).update(pairs)
    if not selectors:
        return
    s = d.get("spec", {})
    if kind in WORKLOADS and kind != "Job":
        s.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
    elif kind == "Service":
        s.setdefault("selector", {}).update(pairs)
    elif kind == "PodDisruptionBudget":
        s.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
    elif kind == "NetworkPolicy":
        sel = s.get("podSelector", {})
        if "matchLabels" in sel:
            sel["matchLabels"].update(pairs)
        for rule in s.get("ingress", []):
            for peer in rule.get("from", []):
                if "matchLabels" in peer.get("podSelector", {}):
                    peer["podSelector"]["matchLabels"].update(pairs)
        for rule in s.get("egress", []):
            for peer in rule.get("to", []):
                if "matchLabels" in peer.get("podSelector", {}):
                    peer["podSelector"]["matchLabels"].update(pairs)


# --- images ----------------------------------------------------------------------------------
def _image(d: Doc, spec: Doc) -> None:
    pod = _pod_spec(d)
    if pod is None:
        return
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        name, tag, digest = _split_image(c["image"])
        if name != spec["name"]:
            continue
        name = spec.get("newName", name)
        if "digest" in spec:
            c["image"] = f"{name}@{spec['digest']}"
        elif "newTag" in spec:
            c["image"] = f"{name}:{spec['newTag']}"
        else:
            c["image"] = name + (f"@{digest}" if digest else f":{tag}" if tag else "")


def _split_image(image: str) -> tuple[str, str, str]:
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def _pod_spec(d: Doc) -> Doc | None:
    if d["kind"] in WORKLOADS:
        spec: Doc = d["spec"]["template"]["spec"]
        return spec
    if d["kind"] == "CronJob":
        spec = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py KUSTOMIZATION_DIR", file=sys.stderr)
        return 2
    try:
        docs = render(argv[0])
    except RenderError as e:
        print(f"render: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
