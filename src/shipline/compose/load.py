"""Reading Compose files into a ComposeProject, as `docker compose -f a.yml -f b.yml config` would.

Per file, in order: parse (yamlload), interpolate `${VAR}` in values (variables), resolve `extends` and
`include`, then merge into what the files before it defined (merge). Nothing stops at the first problem:
each is recorded, so the user sees every one at once.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..sourcetree import SourceTree, normalize
from ..variables import TemplateError, references, substitute
from ..yamlload import Override, Reset, YamlError, load
from .merge import enforce_unicity, merge, strip_tags
from .model import ComposeProject, Problem, RepoRef, VarUse, parse_service, parse_top_level
from .syntax import ComposeSyntaxError, parse_volume

Lookup = Callable[[str], "str | None"]
MAX_EXTENDS_DEPTH = 32


@dataclass
class _Loader:
    tree: SourceTree
    lookup: Lookup | None  # None: values stay as written (what `init` copies into shipline.yml)
    problems: list[Problem] = field(default_factory=list)
    variables: list[VarUse] = field(default_factory=list)
    refs: list[RepoRef] = field(default_factory=list)
    _parsed: dict[str, Any] = field(default_factory=dict)

    def problem(self, file: str, key: str, message: str) -> None:
        self.problems.append(Problem(file, key, message))

    def read(self, path: str, key: str, by: str, fix: str, defaults: dict[str, str] | None = None) -> dict[str, Any] | None:
        """One file, parsed and interpolated (cached: `extends` may name the same file many times).

        `defaults`: values for variables the servers do not set (an `include`'s `env_file`).
        """
        if path in self._parsed:
            return self._parsed[path]  # type: ignore[no-any-return]
        self._parsed[path] = None
        data = self.tree.read(path)
        if data is None:
            self.problem(by, key, f"the Compose file {path} does not exist in {self.tree.label}. {fix}")
            return None
        try:
            parsed = load(data)
        except YamlError as exc:
            self.problem(path, "", f"{exc}. Fix the file; shipline reads it as Docker Compose does.")
            return None
        if not isinstance(parsed, dict):
            what = "empty" if parsed is None else f"a YAML {type(parsed).__name__}"
            self.problem(path, "", f"a Compose file is a mapping with a `services:` key; this one is {what}.")
            return None
        lookup = self.lookup
        if defaults and lookup is not None:
            outer = lookup

            def lookup(name: str) -> str | None:
                value = outer(name)
                return defaults.get(name) if value is None else value

        result = self._interpolate(parsed, path, "", lookup, defaults or {})
        self._parsed[path] = result
        return result  # type: ignore[no-any-return]

    def _interpolate(self, value: Any, file: str, key: str, lookup: Lookup | None, defaults: dict[str, str]) -> Any:
        """Variables replaced in every string value (never in keys), each use recorded with its key."""
        if isinstance(value, str):
            if "$" not in value:
                return value
            try:
                for ref in references(value):
                    op = ":-" if ref.name in defaults and ref.op in ("", "?") else ref.op  # the include's env_file
                    self.variables.append(VarUse(ref.name, op, file, key, ref.message))
                return value if lookup is None else substitute(value, lookup, missing="")
            except TemplateError as exc:
                self.problem(file, key, f"{exc}. Write `$$` for a literal `$`.")
                return value
        if isinstance(value, dict):
            return {k: self._interpolate(v, file, f"{key}.{k}" if key else str(k), lookup, defaults)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self._interpolate(v, file, f"{key}[{i}]", lookup, defaults) for i, v in enumerate(value)]
        if isinstance(value, Reset | Override):
            return type(value)(self._interpolate(value.value, file, key, lookup, defaults))
        return value


COMPOSE_FIX = "Set `compose:` to your production Compose file (or a list, base file first), relative to shipline.yml."
REF_FIX = "Commit it, or fix the path (relative to the file that names it)."


def unset(_name: str) -> str | None:
    """No variable is set: defaults apply, the rest become empty (a server with no environment)."""
    return None


def load_project(files: Sequence[str], tree: SourceTree, lookup: Lookup | None = unset,
                 config_file: str = "shipline.yml") -> ComposeProject:
    """The merged project of these repository-relative files (`-f` order), with every problem found.

    `lookup` gives the value of each `${VAR}` on the servers (None when unset); with no lookup at all the
    values stay as written.
    """
    loader = _Loader(tree, lookup)
    files = [normalize(f) for f in files]
    project_dir = posixpath.dirname(files[0]) or "."
    merged = _merged(loader, files, project_dir, config_file)
    where = " + ".join(files)
    services_raw = merged.get("services")
    if not isinstance(services_raw, dict) or not services_raw:
        if not loader.problems:
            loader.problem(where, "services", "there is no `services:` mapping with at least one service. shipline "
                           "deploys the services it describes: point `compose:` at your production file.")
        services_raw = {}
    services = {name: parse_service(name, s, where, loader.problems)
                for name, s in ((_name(n), s) for n, s in services_raw.items())}
    secrets = parse_top_level("secrets", merged.get("secrets"), where, loader.problems)
    configs = parse_top_level("configs", merged.get("configs"), where, loader.problems)
    # Passed through from Compose's environment (the release's env file) by name when set, left out when not.
    for svc in services.values():
        loader.variables += [VarUse(k, "pass", where, f"{svc.key}.environment.{k}")
                             for k, v in svc.environment.items() if v is None]
    for kind, items in (("secrets", secrets), ("configs", configs)):
        loader.variables += [VarUse(i.environment, "", where, f"{kind}.{i.name}.environment")
                             for i in items.values() if i.environment]
    volumes = merged.get("volumes")
    return ComposeProject(
        files=tuple(files), project_dir=project_dir, services=services, secrets=secrets, configs=configs,
        volumes=frozenset(str(v) for v in volumes) if isinstance(volumes, dict) else frozenset(),
        compose_refs=tuple(loader.refs), variables=tuple(loader.variables), problems=tuple(loader.problems))


def merged_as_written(files: Sequence[str], tree: SourceTree) -> dict[str, Any]:
    """The files merged as Compose merges them (`extends` and `include` resolved), `${VAR}` left as written:
    what `docker stack deploy` reads, interpolating it itself. Problems are `load_project`'s to report."""
    files = [normalize(f) for f in files]
    return _merged(_Loader(tree, None), files, posixpath.dirname(files[0]) or ".", "shipline.yml")


def _merged(loader: _Loader, files: list[str], project_dir: str, config_file: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for i, path in enumerate(files):
        data = loader.read(path, "compose" if len(files) == 1 else f"compose[{i}]", config_file, COMPOSE_FIX)
        if data is None:
            continue
        services = data.get("services")
        if services is not None and not isinstance(services, dict):
            loader.problem(path, "services", "`services:` is a mapping of service names to their definitions.")
            data = {k: v for k, v in data.items() if k != "services"}
        elif isinstance(services, dict):
            data = {**data, "services": _resolve_extends(loader, path, project_dir, services)}
        for j, item in enumerate(data.get("include") or [] if isinstance(data.get("include"), list) else []):
            _include(loader, path, project_dir, item, f"include[{j}]", merged)
        data = {k: v for k, v in data.items() if k != "include"}
        merged = enforce_unicity(merge(merged, data) if merged else strip_tags(data))
    return merged


def _name(key: object) -> str:
    return key if isinstance(key, str) else str(key)  # keeps the str it was given (tests count its uses)


def _resolve_extends(loader: _Loader, file: str, project_dir: str, services: dict[Any, Any]) -> dict[str, Any]:
    """Every service with `extends:` replaced by its base merged with its own keys (compose-go `ApplyExtends`)."""
    out: dict[str, Any] = {}
    for name, spec in services.items():
        out[_name(name)] = _extended(loader, file, project_dir, _name(name), spec, services, 0, set())
    return out


def _extended(loader: _Loader, file: str, project_dir: str, name: str, spec: Any, services: dict[Any, Any],
              depth: int, seen: set[tuple[str, str]]) -> Any:
    if not isinstance(spec, dict) or "extends" not in spec:
        return spec
    key = f"services.{name}.extends"
    ext = spec["extends"]
    base_name, base_file = (ext, None) if isinstance(ext, str) else \
        (ext.get("service"), ext.get("file")) if isinstance(ext, dict) else (None, None)
    own = {k: v for k, v in spec.items() if k != "extends"}
    if not isinstance(base_name, str):
        loader.problem(file, key, "`extends:` names a service, or is `{service: NAME, file: PATH}`.")
        return own
    if depth > MAX_EXTENDS_DEPTH or (file, base_name) in seen:
        loader.problem(file, key, f"extending {base_name!r} leads back to itself. Break the `extends` loop.")
        return own
    base_services, base_path = services, file
    if base_file is not None:
        base_path = normalize(posixpath.join(posixpath.dirname(file), str(base_file)))
        if base_path.startswith("../") or base_path == "..":
            loader.problem(file, f"{key}.file", f"{base_file} is outside the repository. Keep Compose files in it.")
            return own
        loader.refs.append(RepoRef(base_path, f"{key}.file"))
        data = loader.read(base_path, f"{key}.file", file, REF_FIX)
        found = data.get("services") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            return own
        base_services = found
    if base_name not in base_services:
        loader.problem(file, key, f"there is no service {base_name!r} in {base_path} to extend.")
        return own
    base = _extended(loader, base_path, project_dir, base_name, base_services[base_name], base_services,
                     depth + 1, seen | {(file, base_name)})
    if base_file is not None and posixpath.dirname(base_path) != posixpath.dirname(file):
        base = _rebase(base, posixpath.dirname(base_path), project_dir)
    if not isinstance(base, dict):
        return own
    return merge(base, own, ("services", name))


def _rebase_path(path: str, from_dir: str, to_dir: str) -> str:
    if not path or posixpath.isabs(path) or path.startswith("~") or "://" in path or path.startswith("git@"):
        return path
    return posixpath.relpath(normalize(posixpath.join(from_dir or ".", path)), to_dir or ".")


def _rebase(spec: dict[str, Any], from_dir: str, to_dir: str) -> dict[str, Any]:
    """Relative paths of a service defined in another directory, made relative to the project directory."""
    out = dict(spec)
    build = out.get("build")
    if isinstance(build, str):
        out["build"] = _rebase_path(build, from_dir, to_dir)
    elif isinstance(build, dict) and isinstance(build.get("context", "."), str):
        out["build"] = {**build, "context": _rebase_path(build.get("context", "."), from_dir, to_dir)}
    env = out.get("env_file")
    if isinstance(env, str | list):
        items = env if isinstance(env, list) else [env]
        out["env_file"] = [_rebase_path(e, from_dir, to_dir) if isinstance(e, str) else
                           {**e, "path": _rebase_path(str(e.get("path", "")), from_dir, to_dir)} if isinstance(e, dict) else e
                           for e in items]
    volumes = out.get("volumes")
    if isinstance(volumes, list):
        rebased: list[Any] = []
        for v in volumes:
            if isinstance(v, str):
                try:
                    m = parse_volume(v)
                except ComposeSyntaxError:
                    m = None
                if m is not None and m.type == "bind" and m.source:
                    v = ":".join([_rebase_path(m.source, from_dir, to_dir), m.target, *([m.mode] if m.mode else [])])
            elif isinstance(v, dict) and v.get("type") == "bind" and isinstance(v.get("source"), str):
                v = {**v, "source": _rebase_path(v["source"], from_dir, to_dir)}
            rebased.append(v)
        out["volumes"] = rebased
    return out


def _include(loader: _Loader, file: str, project_dir: str, item: Any, key: str, merged: dict[str, Any]) -> None:
    """`include:` adds another file's services and resources. Their relative paths start at the included
    file's directory, or at its `project_directory`; its `env_file` gives defaults for its variables."""
    spec = {"path": item} if isinstance(item, str) else item if isinstance(item, dict) else {}
    paths = spec.get("path")
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        loader.problem(file, key, "each `include:` entry is a path, or `{path: PATH}`.")
        return
    here = posixpath.dirname(file)
    defaults: dict[str, str] = {}
    env_files = spec.get("env_file")
    for env in [env_files] if isinstance(env_files, str) else env_files if isinstance(env_files, list) else []:
        raw = loader.tree.read(normalize(posixpath.join(here, str(env)))) if isinstance(env, str) else None
        if raw is None:
            loader.problem(file, f"{key}.env_file", f"{env} does not exist in {loader.tree.label}. Commit it, or fix the path.")
            continue
        loader.refs.append(RepoRef(normalize(posixpath.join(here, str(env))), f"{key}.env_file"))
        defaults.update(parse_dotenv(raw.decode("utf-8", "replace")))
    base = spec.get("project_directory")
    for p in paths:
        target = normalize(posixpath.join(here, p))
        if target.startswith("../") or target == ".." or posixpath.isabs(p):
            loader.problem(file, key, f"{p} is outside the repository. Keep included Compose files in it.")
            continue
        loader.refs.append(RepoRef(target, key))
        data = loader.read(target, key, file, REF_FIX, defaults)
        if not isinstance(data, dict):
            continue
        found = data.get("services")
        services = _resolve_extends(loader, target, project_dir, found if isinstance(found, dict) else {})
        own_dir = normalize(posixpath.join(here, base)) if isinstance(base, str) else posixpath.dirname(target)
        if own_dir != project_dir:
            services = {n: _rebase(s, own_dir, project_dir) if isinstance(s, dict) else s for n, s in services.items()}
        existing = merged.setdefault("services", {})
        for name, svc in services.items():
            if name in existing:
                loader.problem(file, key, f"{p} defines service {name!r} again. Rename one of them.")
                continue
            existing[name] = svc
        for section in ("volumes", "networks", "secrets", "configs"):
            if isinstance(data.get(section), dict):
                merged.setdefault(section, {}).update(data[section])


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=value` lines as Compose reads a `.env` (comments, `export `, matching quotes)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[name.strip()] = value
    return out
