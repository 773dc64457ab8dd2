"""Purpose limitation: a Silo's spec.consent decides which jobs may name it, and a refusal names the
silo, what it lacks and the fix; malformed consent is refused at validation, naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedsilo.api import ManifestError, consent_refusal, consent_refusals, parse_manifest

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.yaml"
CONSENT = (
    "displayName: Hospital A\n"
    "  consent:\n"
    "    dataClasses: [internal, sensitive]\n"
    "    purposes: [sepsis-research]\n"
    "    jobNames: [quick*, sepsis-*]"
)


def _manifest(consent: str = CONSENT, purpose: str | None = "sepsis-research", data_class: str = "sensitive") -> str:
    text = QUICKSTART.read_text().replace("displayName: Hospital A", consent, 1)
    text = text.replace("dataClass: sensitive", f"dataClass: {data_class}", 1)
    if purpose is not None:
        text = text.replace("  rounds:", f"  purpose: {purpose}\n  rounds:", 1)
    return text


def _refusals(text: str) -> list[tuple[str, str]]:
    manifest = parse_manifest(text, "job.yaml")
    return [(r.silo, r.missing) for r in consent_refusals(manifest.job, list(manifest.silos))]


def test_a_job_inside_the_silos_consent_is_let_through() -> None:
    assert _refusals(_manifest()) == []


def test_a_silo_without_a_consent_block_accepts_any_job() -> None:
    manifest = parse_manifest(_manifest(purpose=None), "job.yaml")
    assert consent_refusal(manifest.job, manifest.silos[1]) is None


def test_a_data_class_outside_the_consent_is_refused_naming_silo_and_class() -> None:
    manifest = parse_manifest(_manifest(data_class="public"), "job.yaml")
    refusal = consent_refusal(manifest.job, manifest.silos[0])
    assert refusal is not None and refusal.missing == "dataClass"
    assert "Silo hospital-a has not consented to public data" in refusal.message
    assert "spec.consent.dataClasses lists internal, sensitive" in refusal.message


def test_another_purpose_is_refused_naming_it() -> None:
    manifest = parse_manifest(_manifest(purpose="marketing"), "job.yaml")
    refusal = consent_refusal(manifest.job, manifest.silos[0])
    assert refusal is not None and refusal.missing == "purpose"
    assert "has not consented to the purpose marketing" in refusal.message and "sepsis-research" in refusal.message


def test_a_job_stating_no_purpose_is_refused_by_a_silo_that_lists_purposes() -> None:
    assert _refusals(_manifest(purpose=None)) == [("hospital-a", "purpose")]
    manifest = parse_manifest(_manifest(purpose=None), "job.yaml")
    refusal = consent_refusal(manifest.job, manifest.silos[0])
    assert refusal is not None and "set the job's spec.purpose to one of them" in refusal.message


def test_a_job_name_no_pattern_matches_is_refused() -> None:
    consent = CONSENT.replace("jobNames: [quick*, sepsis-*]", "jobNames: [sepsis-*]")
    manifest = parse_manifest(_manifest(consent=consent), "job.yaml")
    refusal = consent_refusal(manifest.job, manifest.silos[0])
    assert refusal is not None and refusal.missing == "jobName"
    assert "no pattern of its spec.consent.jobNames (sepsis-*) matches" in refusal.message


def test_job_names_default_to_any() -> None:
    consent = CONSENT.replace("\n    jobNames: [quick*, sepsis-*]", "")
    assert _refusals(_manifest(consent=consent)) == []


@pytest.mark.parametrize(
    ("replace", "by", "field"),
    [
        ("dataClasses: [internal, sensitive]", "dataClasses: [secret]", "dataClasses"),
        ("dataClasses: [internal, sensitive]", "dataClasses: []", "dataClasses"),
        ("purposes: [sepsis-research]", "purposes: [Sepsis Research]", "purposes"),
        ("purposes: [sepsis-research]", "purposes: []", "purposes"),
        ("jobNames: [quick*, sepsis-*]", "jobNames: ['quick?']", "jobNames"),
        ("jobNames: [quick*, sepsis-*]", "jobNames: ['../x']", "jobNames"),
        ("purposes: [sepsis-research]", "purposes: [sepsis-research]\n    retention: forever", "retention"),
    ],
)
def test_malformed_consent_is_refused_naming_the_field(replace: str, by: str, field: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(consent=CONSENT.replace(replace, by)), "job.yaml")
    assert "consent" in str(caught.value) and field in str(caught.value)


def test_a_malformed_job_purpose_is_refused_naming_the_field() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(purpose="Not A Label"), "job.yaml")
    assert "purpose" in str(caught.value)


def test_the_local_run_refuses_a_job_outside_a_silos_consent_before_creating_anything(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(_manifest(purpose="marketing"))
    result = subprocess.run(
        [sys.executable, "-m", "fedsilo", "run", str(path), "--workdir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode != 0
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert "Silo hospital-a has not consented to the purpose marketing" in said
    assert "nothing was created" in said
    assert not (tmp_path / "run").exists()
