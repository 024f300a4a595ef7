"""The documentation: the site builds strictly (every link and anchor resolves), the README's links into docs/
resolve, and the relevance figures the docs state are the ones committed for bench/check_relevance.py."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "bench" / "expected" / "scifact.json"
# [text](target) in Markdown, not images' sources; targets with a scheme are outside the repository.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub (and mkdocs' toc) gives a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {github_slug(match) for match in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}


def test_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: any warning (a broken link or anchor, a page left out of the nav) fails."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
               "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "results" / "index.html").is_file()


def test_readme_links_resolve() -> None:
    """Every relative link of the README names a file that exists, and an anchor that its heading gives."""
    targets = [t for t in LINK.findall((ROOT / "README.md").read_text(encoding="utf-8")) if "://" not in t]
    assert any(t.startswith("docs/") for t in targets)
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists() or (anchor and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def test_github_slug_matches_the_sites_anchors() -> None:
    assert github_slug("Why 8 clients' p95 stays above twice one client's on two cores") == \
        "why-8-clients-p95-stays-above-twice-one-clients-on-two-cores"
    assert github_slug("Case 4: a 20 MB single-line file") == "case-4-a-20-mb-single-line-file"
    assert github_slug("`bertsearch index`") == "bertsearch-index"


def results_relevance_rows() -> dict[str, tuple[float, float, float]]:
    """The relevance table of docs/results.md: row label → (nDCG@10, RR@10, R@100)."""
    section = (ROOT / "docs" / "results.md").read_text(encoding="utf-8").split("## Relevance on SciFact")[1]
    rows = {}
    for line in section.split("\n## ")[0].splitlines():
        cells = [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and re.fullmatch(r"0\.\d{3}", cells[1]):
            rows[cells[0].replace("*", "")] = (float(cells[1]), float(cells[2]), float(cells[3]))
    return rows


def test_expected_figures_are_the_ones_the_docs_state() -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    committed = {**{p: f for p, f in expected["pipelines"].items()},
                 **{f"{p} ({name})": f for name, reranker in expected["rerankers"].items()
                    for p, f in reranker["pipelines"].items()}}
    labels = {"bm25 (SQLite FTS5)": "bm25", "dense (all-MiniLM-L6-v2)": "dense", "hybrid (RRF)": "hybrid",
              "hybrid + rerank (reranker trained on train qrels)": "hybrid+rerank (qrels)",
              "dense + rerank (same reranker)": "dense+rerank (qrels)",
              "hybrid + rerank (reranker trained self-supervised, no labels)": "hybrid+rerank (self-supervised)",
              "dense + rerank (same, self-supervised)": "dense+rerank (self-supervised)"}
    stated = {labels[label]: figures for label, figures in results_relevance_rows().items()}
    assert stated == {name: (f["nDCG@10"], f["RR@10"], f["R@100"]) for name, f in committed.items()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_stages = " / ".join(f"{committed[p]['nDCG@10']:.3f}" for p in ("bm25", "dense", "hybrid"))
    assert f"[{first_stages}](docs/results.md#relevance-on-scifact)" in readme


@pytest.fixture(scope="module")
def check_relevance():
    spec = importlib.util.spec_from_file_location("check_relevance", ROOT / "bench" / "check_relevance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_check_relevance_fails_on_a_drift_beyond_the_tolerance(check_relevance) -> None:
    expected = {"hybrid": {"nDCG@10": 0.718, "R@100": 0.961}, "bm25": {"nDCG@10": 0.687}}
    measured = {"hybrid": {"nDCG@10": 0.7195, "R@100": 0.9586}, "bm25": {"nDCG@10": 0.6821}}
    comparisons = check_relevance.compare(expected, measured, tolerance=0.002)
    drifted = sorted((c.pipeline, c.measure) for c in comparisons if c.drifted)
    assert drifted == [("bm25", "nDCG@10"), ("hybrid", "R@100")]
    assert "DRIFT" in next(c for c in comparisons if c.pipeline == "bm25").line()


def test_check_relevance_passes_within_the_tolerance_and_fails_on_a_missing_figure(check_relevance) -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    within = {p: {m: v + 0.0015 for m, v in f.items()} for p, f in expected["pipelines"].items()}
    assert not any(c.drifted for c in check_relevance.compare(expected["pipelines"], within, expected["tolerance"]))
    del within["dense"]
    missing = [c for c in check_relevance.compare(expected["pipelines"], within, expected["tolerance"]) if c.drifted]
    assert {c.pipeline for c in missing} == {"dense"} and all(c.measured is None for c in missing)
