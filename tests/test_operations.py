"""What an operator sees, misconfiguring one thing at a time: an unreachable database is one
clear line and a non-zero exit (a traceback only with ``--debug``), ``omnichat check`` prints a
table of every backend with secrets masked, and no configuration error ever echoes a secret."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_cli import OMNICHAT, _env, _free_port

PASSWORD_IN_URL = "hunter2-db-password"
SECRETS = {
    "OMNICHAT_OPENAI_API_KEY": "sk-openai-secret-0123456789",
    "OMNICHAT_ANTHROPIC_API_KEY": "sk-ant-secret-0123456789",
    "OMNICHAT_GEMINI_API_KEY": "gemini-secret-0123456789",
    "OMNICHAT_COHERE_API_KEY": "cohere-secret-0123456789",
    "OMNICHAT_PINECONE_API_KEY": "pcsk-secret-0123456789",
    "OMNICHAT_REDIS_URL": "redis://:redis-password-0123@127.0.0.1:1/0",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-0123456789",
}
DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "test-access", "AWS_SECRET_ACCESS_KEY": "test-secret"}
SECRET_VALUES = ["secret-0123456789", "redis-password-0123", PASSWORD_IN_URL]


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNICHAT, *args],
        env=_env(tmp_path / "data", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _unreachable_postgres() -> str:
    return f"postgresql+asyncpg://omnichat:{PASSWORD_IN_URL}@127.0.0.1:{_free_port()}/omnichat"


@pytest.mark.parametrize("command", ["serve", "migrate", "reindex", "repair"])
def test_an_unreachable_database_is_one_clear_line_and_exit_1(command: str, tmp_path: Path) -> None:
    url = _unreachable_postgres()
    port = url.rsplit(":", 1)[1].split("/")[0]
    result = _run(tmp_path, command, OMNICHAT_DATABASE_URL=url)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"omnichat: cannot reach the database at 127.0.0.1:{port}: connection refused"
    ], result.stderr
    assert PASSWORD_IN_URL not in result.stdout + result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _run(tmp_path, "migrate", "--debug", OMNICHAT_DATABASE_URL=_unreachable_postgres())
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "cannot reach the database" in result.stderr


def test_check_prints_every_backend_and_exits_0_when_all_answer(tmp_path: Path) -> None:
    result = _run(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["backend", "target", "status", "why"]
    assert [(row[0], row[-1]) for row in rows[1:]] == [("database", "ok"), ("blob", "ok")]


def test_check_names_each_failing_backend_with_secrets_masked(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "check",
        OMNICHAT_DATABASE_URL=_unreachable_postgres(),
        OMNICHAT_REDIS_URL=SECRETS["OMNICHAT_REDIS_URL"],
        OMNICHAT_BLOB_URL="s3://nope",
        OMNICHAT_S3_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}",
        AWS_ACCESS_KEY_ID="test-access-key",
        AWS_SECRET_ACCESS_KEY=SECRETS["AWS_SECRET_ACCESS_KEY"],
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    failed = {line.split()[0] for line in result.stdout.splitlines()[1:] if " failed " in line}
    assert failed == {"database", "redis", "blob"}, result.stdout
    assert "connection refused" in output
    assert "omnichat:***@127.0.0.1" in output  # where, without the password
    assert "Traceback" not in output
    for secret in SECRET_VALUES:
        assert secret not in output


@pytest.mark.parametrize(
    "invalid",
    [
        {"OMNICHAT_SECRET_KEY": "short-secret-0123456789"},  # too short, and a secret itself
        {"OMNICHAT_SECRET_KEY": "changeme"},
        {"OMNICHAT_ACCESS_TOKEN_MINUTES": "many"},
        {"OMNICHAT_DATABASE_URL": f"postgresql://u:{PASSWORD_IN_URL}@h:notaport/db"},
        {"OMNICHAT_VECTOR_STORE": "nope"},
    ],
)
def test_a_configuration_error_never_echoes_a_secret(
    invalid: dict[str, str], tmp_path: Path
) -> None:
    """Every secret set, one setting wrong: the error names the variable and the rule, and no
    secret's value (the wrong one included) appears in anything printed."""
    result = _run(tmp_path, "check", **SECRETS, **invalid)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "omnichat:" in result.stderr
    assert "Traceback" not in output
    for secret in [*SECRET_VALUES, "short-secret-0123456789"]:
        assert secret not in output, output


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("OMNICHAT_S3_ENDPOINT_URL", "http://user:EndpointPW99@127.0.0.1:{port}", "EndpointPW99"),
        ("OMNICHAT_REDIS_URL", "redis://bob:RedisPW/77@127.0.0.1:{port}/0", "RedisPW"),
        ("OMNICHAT_BLOB_URL", "s3://AKIA:UrlSecretZZ@omni/p", "UrlSecretZZ"),
        ("OMNICHAT_PINECONE_HOST", "http://user:PineUrlPW@127.0.0.1:{port}", "PineUrlPW"),
    ],
)
def test_passwords_in_any_backend_url_are_never_printed(
    variable: str, value: str, secret: str, tmp_path: Path
) -> None:
    """Targets and reasons alike (a parser may quote a piece of a badly written URL)."""
    env = {variable: value.format(port=_free_port())}
    if variable.startswith("OMNICHAT_S3"):
        env |= {
            "OMNICHAT_BLOB_URL": "s3://omni/p",
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
        }
    if variable == "OMNICHAT_PINECONE_HOST":
        env |= {"OMNICHAT_VECTOR_STORE": "pinecone", "OMNICHAT_PINECONE_API_KEY": "pcsk-x"}
    result = _run(tmp_path, "check", **env)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert secret not in output, output
    assert "Traceback" not in output


def test_a_blob_store_that_never_answers_fails_the_check_promptly(tmp_path: Path) -> None:
    """An endpoint that takes connections and never answers: the check says so and exits, it
    does not wait out botocore's 60 s timeouts and retries."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = _run(
            tmp_path,
            "check",
            OMNICHAT_BLOB_URL="s3://omni/p",
            OMNICHAT_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            **DUMMY_AWS,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if " failed " in line]
    assert [line.split()[0] for line in failed] == ["blob"], result.stdout
    assert elapsed < 30, elapsed


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[providers.local\nkind = "openai', "not a readable TOML file"),
        ('[providers.local]\nmodels = "llama3.2"\napi_key = "sk-file-secret-0123"', "models"),
        ('[providers.local]\nmodels = ["a"]\napi_key = ["sk-file-secret-0123"]', "api_key"),
        ('[providers.local]\nmodels = ["a"]\nmodel = "b"', "model"),
        ('[providers.local]\nkind = "mystery"\nmodels = ["a"]', "kind"),
    ],
    ids=["not-toml", "models-not-a-list", "key-not-a-string", "unknown-field", "unknown-kind"],
)
def test_check_refuses_a_providers_file_serve_would_refuse_or_misread(
    toml: str, named: str, tmp_path: Path
) -> None:
    """The providers file is read strictly (a string of models was read as its characters) and
    ``check`` reads it as ``serve`` does: one line naming the file and the field, no value."""
    path = tmp_path / "providers.toml"
    path.write_text(toml)
    result = _run(tmp_path, "check", OMNICHAT_PROVIDERS_FILE=str(path))
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"omnichat: invalid configuration: {path}"), lines
    assert named in lines[0]
    assert "sk-file-secret" not in result.stdout + result.stderr
