"""One Presign instance for a bench section: its folder, database, settings, an API key and listings."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from risk.bench.infra import Scratch, clean_env
from risk.db import transaction
from risk.demo.world import SCENARIOS, Scenario, listing_body, records
from risk.runtime import Runtime
from risk.schema import upgrade
from risk.settings import PROVIDER_NAMES, Settings


@dataclass
class Site:
    folder: Path
    env: dict[str, str]  # what the instance's child processes get
    rt: Runtime
    key: str = ""  # an agent key of the default company and store
    listings: list[tuple[str, Scenario]] = field(default_factory=list)  # (listing id, scenario)

    @classmethod
    def create(cls, scratch: Scratch, name: str, *, redis_url: str, database_url: str | None = None,
               provider_url: str | None = None) -> Site:  # fmt: skip
        folder = scratch.folder(name)
        env = clean_env(
            PRESIGN_INSTANCE=str(folder),
            PRESIGN_DATABASE_URL=database_url or f"sqlite:///{folder / 'presign.db'}",
            PRESIGN_REDIS_URL=redis_url,
            PRESIGN_SECRET_KEY=uuid.uuid4().hex,
            **{f"PRESIGN_{n.upper()}_PROVIDER": provider_url or "local" for n in PROVIDER_NAMES},
        )
        rt = Runtime.build(Settings.from_env({k: v for k, v in env.items() if k.startswith("PRESIGN_")}))
        scratch.stack.callback(rt.close)
        upgrade(rt.engine)
        site = cls(folder=folder, env=env, rt=rt)
        site.key = site.new_key("agent")
        return site

    @property
    def is_sqlite(self) -> bool:
        return self.rt.settings.is_sqlite

    def new_key(self, role: str) -> str:
        from risk.auth.operations import create_client

        with transaction(self.rt.sessions) as session:
            return create_client(session, self.rt.clock, self.rt.secret_box, role=role, name=f"bench {role}").key

    def import_world(self) -> None:
        """The demo world's registry records, for the `local` providers."""
        from checks.providers.importer import import_records

        import_records(self.rt, records(self.rt.clock.now()))

    def add_listings(self, count: int, scenarios: list[Scenario] | None = None) -> list[str]:
        """`count` listings through the API (in-process), cycling over the demo world's scenarios."""
        from risk.app import create_app

        client = create_app(runtime=self.rt).test_client()
        headers = {"Authorization": f"Bearer {self.key}"}
        scenarios = scenarios or SCENARIOS
        made = []
        for n in range(count):
            scenario = scenarios[n % len(scenarios)]
            run = f"b{len(self.listings)}-{uuid.uuid4().hex[:6]}"
            response = client.post("/api/v1/listings", json=listing_body(scenario, run), headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"listing not created: {response.status_code} {response.get_data(as_text=True)}")
            listing_id = response.get_json()["id"]
            self.listings.append((listing_id, scenario))
            made.append(listing_id)
        return made


def write_records(path: Path, items: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False))
            fh.write("\n")
    return path


def world_records_file(scratch: Scratch, site_now: Any) -> Path:
    """The demo world's records as JSON Lines, for the provider server."""
    return write_records(scratch.root / "world.jsonl", records(site_now))
