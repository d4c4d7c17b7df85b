"""Report retrieval quality (hit rate at k, MRR) of full-text, vector and hybrid ranking."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from chatbots.models import AIEndpoint
from knowledge.evaluation import DEMO_SET, Embedding, evaluation_run


class Command(BaseCommand):
    help = (
        "Read an evaluation set's documents into a throw-away knowledge base and report hit@k and "
        "MRR per retrieval method (vector and hybrid need --embedding-url and --embedding-model)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--set", default=str(DEMO_SET), help="evaluation set (JSON)")
        parser.add_argument(
            "--embedding-url",
            default="",
            help="an OpenAI-compatible base URL (…/v1) needing no key",
        )
        parser.add_argument(
            "--embedding-endpoint",
            type=int,
            default=None,
            help="or the id of a stored AI endpoint, whose encrypted key is used",
        )
        parser.add_argument("--embedding-model", default="")
        parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        embedding = None
        url, endpoint_id = options["embedding_url"], options["embedding_endpoint"]
        if url or endpoint_id or options["embedding_model"]:
            if not ((url or endpoint_id) and options["embedding_model"]):
                raise CommandError(
                    "Give --embedding-model with --embedding-url or --embedding-endpoint."
                )
            key = ""
            if endpoint_id:
                endpoint = AIEndpoint.objects.filter(pk=endpoint_id).first()
                if endpoint is None:
                    raise CommandError(f"No AI endpoint with id {endpoint_id}.")
                url, key = endpoint.base_url, endpoint.api_key.reveal() if endpoint.api_key else ""
            embedding = Embedding(base_url=url, model=options["embedding_model"], api_key=key)
        path = Path(options["set"])
        if not path.is_file():
            raise CommandError(f"No evaluation set at {path}.")
        report = evaluation_run(path=path, embedding=embedding, ks=tuple(sorted(set(options["k"]))))
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
            return
        self.stdout.write(f"{report['set']}: {report['questions']} questions")
        for group, methods in [("all", report["methods"]), *report["by_language"].items()]:
            self.stdout.write(f"\n[{group}]")
            for method, score in methods.items():
                figures = "  ".join(f"{name} {value:.3f}" for name, value in score.items())
                self.stdout.write(f"  {method:<9}{figures}")
        for method, questions in report["misses"].items():
            self.stdout.write(f"\nnot in the top {max(options['k'])} by {method}: {len(questions)}")
