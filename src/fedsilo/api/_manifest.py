"""Loading a run manifest: one ``FederatedJob`` and its ``Silo`` objects in multi-document YAML.

Called by the CLI before anything starts, so that a bad manifest fails with every problem
listed at once, each naming the field path and how to fix it, and nothing is launched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ._types import API_VERSION, FederatedJob, Silo
from ._yaml import YamlRefusal, load_documents


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest."""

    path: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}. Fix: {self.fix}"


class ManifestError(ValueError):
    """A manifest that cannot be run; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} is not a valid fedsilo manifest:\n{lines}")


@dataclass(frozen=True)
class Manifest:
    """A validated job with the silos it names, in the job's order."""

    job: FederatedJob
    silos: tuple[Silo, ...]

    def silo(self, name: str) -> Silo:
        """The silo object called ``name``."""
        for silo in self.silos:
            if silo.metadata.name == name:
                return silo
        raise KeyError(name)


_FIXES = {
    "missing": "add the field",
    "extra_forbidden": "remove the field or check its spelling against 'kubectl explain'",
    "enum": "use one of the allowed values",
    "literal_error": "use the allowed value",
    "greater_than_equal": "raise the value to the lower bound",
    "greater_than": "raise the value above the lower bound",
    "less_than_equal": "lower the value to the upper bound",
    "less_than": "lower the value below the upper bound",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "string_type": "write a string",
    "bool_type": "write true or false",
    "list_type": "write a list",
    "dict_type": "write a mapping",
    "model_type": "write a mapping",
    "too_short": "add entries",
    "too_long": "remove entries",
    "string_pattern_mismatch": "match the documented format",
}


def _camel_path(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    """Render a pydantic error location with the manifest's camelCase names."""
    parts: list[str] = []
    current: Any = model
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            current = None
            continue
        name = str(item)
        fields = getattr(current, "model_fields", None)
        if fields and name in fields:
            field = fields[name]
            alias = field.alias or name
            parts.append(("." if parts else "") + alias)
            annotation = field.annotation
            current = annotation if isinstance(annotation, type) else _model_in(annotation)
        else:
            parts.append(("." if parts else "") + name)
            current = None
    return "".join(parts) or "(document)"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an ``X | None`` annotation, if any."""
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _problems_from(error: ValidationError, model: type[BaseModel], prefix: str) -> list[Problem]:
    problems = []
    for item in error.errors():
        path = _camel_path(tuple(item["loc"]), model)
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if "input" in item and item["type"] not in ("missing", "model_type") and not isinstance(item["input"], dict):
            message = f"{message} (got {item['input']!r})"
        fix = _FIXES.get(item["type"], "correct the value as the message says")
        if item["type"] == "value_error":
            fix = "change the fields the message names"
        problems.append(Problem(f"{prefix}{path}", message, fix))
    return problems


def _null_fields(node: object, path: str = "") -> list[str]:
    """Where a field is written as null; ``status`` is the operator's and is not read."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not path and key == "status":
                continue
            where = f"{path}.{key}" if path else str(key)
            found += [where] if value is None else _null_fields(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += [f"{path}[{index}]"] if item is None else _null_fields(item, f"{path}[{index}]")
    return found


def parse_manifest(text: str | bytes, source: str = "<manifest>") -> Manifest:
    """Validate manifest text (or the file's bytes); raise ``ManifestError`` listing every problem found."""
    try:
        documents = load_documents(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    except YamlRefusal as refusal:
        raise ManifestError(source, [Problem("(file)", str(refusal), refusal.fix)]) from refusal

    problems: list[Problem] = []
    jobs: list[FederatedJob] = []
    silos: list[Silo] = []
    for index, document in enumerate(documents):
        prefix = f"document {index + 1} "
        if not isinstance(document, dict):
            problems.append(Problem(prefix.strip(), "is not a mapping", "write a Kubernetes object"))
            continue
        kind = document.get("kind")
        metadata = document.get("metadata")
        name = metadata.get("name", "?") if isinstance(metadata, dict) else "?"
        label = f"{kind if isinstance(kind, str) else 'object'}/{name}: "
        model: type[FederatedJob] | type[Silo]
        if kind == "FederatedJob":
            model = FederatedJob
        elif kind == "Silo":
            model = Silo
        else:
            problems.append(Problem(f"{prefix}kind", f"unknown kind {kind!r}", "use FederatedJob or Silo"))
            continue
        # The API server refuses a null where a value is typed; pydantic would read it as "absent".
        nulls = _null_fields(document)
        if nulls:
            problems.extend(
                Problem(f"{label}{where}", "is null", "remove the field to take its default, or write a value")
                for where in nulls
            )
            continue
        if document.get("apiVersion") != API_VERSION:
            problems.append(
                Problem(
                    f"{label}apiVersion",
                    f"is {document.get('apiVersion')!r}",
                    f"set apiVersion: {API_VERSION}",
                )
            )
            continue
        try:
            parsed = model.model_validate(document)
        except ValidationError as error:
            problems.extend(_problems_from(error, model, label))
            continue
        if isinstance(parsed, FederatedJob):
            jobs.append(parsed)
        else:
            silos.append(parsed)

    if len(jobs) != 1 and not problems:
        problems.append(
            Problem(
                "(file)",
                f"holds {len(jobs)} FederatedJob objects",
                "put exactly one FederatedJob in a run manifest",
            )
        )
    if problems:
        raise ManifestError(source, problems)

    job = jobs[0]
    by_name: dict[str, Silo] = {}
    for silo in silos:
        if silo.metadata.name in by_name:
            problems.append(
                Problem(
                    f"Silo/{silo.metadata.name}: metadata.name",
                    "is defined twice",
                    "give every Silo a unique name",
                )
            )
        by_name[silo.metadata.name] = silo
    for index, name in enumerate(job.spec.silos):
        if name not in by_name:
            problems.append(
                Problem(
                    f"FederatedJob/{job.metadata.name}: spec.silos[{index}]",
                    f"names Silo {name!r}, which the manifest does not define",
                    f"add a Silo document named {name} or remove it from spec.silos",
                )
            )
    if problems:
        raise ManifestError(source, problems)
    return Manifest(job=job, silos=tuple(by_name[name] for name in job.spec.silos))


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as error:
        raise ManifestError(
            str(source), [Problem("(file)", f"cannot be read: {error.strerror}", "check the path")]
        ) from error
    return parse_manifest(data, str(source))
