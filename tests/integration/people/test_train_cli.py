"""`joinedup people train` replaces a model file this version refuses."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from joinedup.people.cli import app
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import NhsNumberOnlyMatcher
from joinedup.people.matching.model import MatchingModel
from joinedup.storage.engine import Database
from tests.integration.people.test_person_index import person


def test_train_replaces_a_refused_model_file(db: Database, tmp_path: Path) -> None:
    index = PersonIndex(db, NhsNumberOnlyMatcher())
    given = ["JOHN", "MARY", "ALI", "PETER", "SUSAN", "AMIR", "JANE", "OWEN", "RUTH", "SAM"]
    family = ["SMITH", "JONES", "KHAN", "BROWN", "TAYLOR", "WILSON", "DAVIES", "EVANS"]
    for i in range(1000):  # training refuses estates smaller than this; 500 people twice
        j = i % 500
        index.link_one(
            person(
                f"R/{i}",
                given=given[j % 10],
                family=family[(j // 10) % 8],
                dob=f"19{40 + j % 50}-{1 + j % 12:02d}-{1 + j % 28:02d}",
                postcode=f"WX{j % 9} {j % 7}AB",
            ),
            "RWX" if i < 500 else "WCCASC",
        )
    model_path = tmp_path / "models" / "matching-model.json"
    model_path.parent.mkdir()
    model_path.write_text('{"format": "joinedup.matching-model", "format_version": 1}')
    env = {
        "JOINEDUP_DATA_DIR": str(tmp_path),
        "JOINEDUP_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
    }
    refused = CliRunner().invoke(app, ["stats"], env=env)
    assert refused.exit_code != 0  # the old file stops the service, with its reason

    trained = CliRunner().invoke(app, ["train"], env=env)
    assert trained.exit_code == 0, trained.output
    assert MatchingModel.load(model_path).summary["records"] == 1000
    assert CliRunner().invoke(app, ["stats"], env=env).exit_code == 0
