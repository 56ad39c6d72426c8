"""Model deployment side effects: obtain a candidate artifact (train one off the worker's
event loop, or take a given one), validate it and the live model on the same held-out
sessions, and record the decision in the model registry."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from flashmm.config import Settings
from workflows.types import DeployModelInput, ModelScore, ValidationReport

QUOTING_HORIZON = "200ms"


class MLActivities:
    def __init__(self, settings: Settings, models_dir: Path = Path("models")) -> None:
        self.s = settings
        self.models_dir = models_dir

    @activity.defn(name="ml_candidate")
    async def candidate(self, inp: DeployModelInput) -> str:
        """The artifact to deploy. Training is idempotent per workflow: a finished artifact
        in this workflow's directory is reused by a retried attempt."""
        if inp.artifact_path:
            if not (Path(inp.artifact_path) / "card.json").exists():
                raise ApplicationError(
                    f"no artifact at {inp.artifact_path}",
                    type="InvalidArtifact",
                    non_retryable=True,
                )
            return inp.artifact_path
        info = activity.info()  # per run: a redeploy under the same id trains afresh
        wid = f"{info.workflow_id or 'deploy'}-{info.workflow_run_id or ''}"
        out = self.models_dir / "".join(c if c.isalnum() or c in "-_" else "_" for c in wid)
        if (out / "card.json").exists():
            return str(out)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "train",
            "--kind",
            inp.kind,
            "--seeds",
            inp.train_seeds,
            "--minutes",
            str(inp.train_minutes),
            "--epochs",
            str(inp.train_epochs),
            "--out",
            str(out),
            "--quiet",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        while proc.returncode is None:
            activity.heartbeat("training")
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                continue
        if proc.returncode != 0:
            err = (await proc.stderr.read()).decode()[-500:] if proc.stderr else ""
            raise ApplicationError(f"training failed: {err}")
        return str(out)

    @activity.defn(name="ml_validate")
    async def validate(self, candidate: str, live: str, inp: DeployModelInput) -> ValidationReport:
        """Accuracy on non-flat moves and calibration at the quoting horizon, and inference
        latency, for the candidate and (if there is one) the live model."""
        task = asyncio.create_task(asyncio.to_thread(self._validate, candidate, live, inp))
        while not task.done():
            activity.heartbeat("validating")
            await asyncio.wait({task}, timeout=10)
        return task.result()

    def _validate(self, candidate: str, live: str, inp: DeployModelInput) -> ValidationReport:
        from flashmm.ml.calibration import horizon_metrics
        from flashmm.ml.dataset import Dataset, parse_seeds, simulate
        from flashmm.ml.evaluate import EvalModel, logits_on
        from flashmm.ml.export import load
        from flashmm.ml.schema import SchemaMismatchError

        if not candidate:
            raise ApplicationError(
                "no candidate to validate", type="InvalidArtifact", non_retryable=True
            )
        seeds = parse_seeds(inp.holdout_seeds)
        data = Dataset.concat([simulate(s, inp.holdout_minutes) for s in seeds])
        scores: dict[str, ModelScore | None] = {}
        for name, path in (("candidate", candidate), ("live", live)):
            if not path:
                scores[name] = None
                continue
            try:
                m = load(path)
            except (SchemaMismatchError, FileNotFoundError, ValueError) as e:
                raise ApplicationError(
                    f"{name} model at {path} refused: {e}",
                    type="InvalidArtifact",
                    non_retryable=True,
                ) from None
            logits, labels = logits_on(EvalModel(m, m.schema), data, m.seq_len)
            metrics = horizon_metrics(logits, labels, m.horizons)[QUOTING_HORIZON]
            scores[name] = ModelScore(
                str(m.card["version"]),
                float(metrics["accuracy_moved"]),
                float(metrics["ece"]),
                float(m.card["latency"]["p99_us"]),
                path,
                dict(metrics),
            )
        scored = scores["candidate"]
        assert scored is not None
        return ValidationReport(scored, scores["live"], seeds, len(data))

    @activity.defn(name="model_registry_record")
    async def record(self, path: str, status: str, metrics: dict[str, Any]) -> None:
        card = json.loads((Path(path) / "card.json").read_text())
        conn = await asyncpg.connect(self.s.stores.postgres_dsn, timeout=5)
        try:
            await conn.execute(
                """INSERT INTO model_registry (name, version, path, schema_hash, metrics,
                                              status)
                   VALUES ($1, $2, $3, $4, $5::jsonb, $6)
                   ON CONFLICT (name, version) DO UPDATE SET status = EXCLUDED.status,
                       metrics = EXCLUDED.metrics""",
                card.get("kind", "model"),
                card["version"],
                path,
                card["feature_schema"]["hash"],
                json.dumps(metrics, default=str),
                status,
            )
        finally:
            await conn.close()
        activity.logger.info(
            "model %s recorded as %s at %.0f", card["version"], status, time.time()
        )
