"""`entrepot apikey create` and `entrepot user create` on both databases: what a script reads, and how
an operator's mistake is refused."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from typer.testing import CliRunner

from entrepot.cli.main import app
from entrepot.identity.models import ApiKey, User


def test_a_name_longer_than_its_column_is_refused_by_name_and_nothing_is_written(tenant):
    runner = CliRunner()
    long_name = "n" * 201
    # when a key and a user are given names too long to store
    key = runner.invoke(app, ["apikey", "create", "--tenant", tenant.slug, "--name", long_name])
    user = runner.invoke(app, ["user", "create", "ann@example.test", "--tenant", tenant.slug, "--name", long_name,
                               "--password", "correct horse battery"])
    email = runner.invoke(app, ["user", "create", "a" * 320 + "@example.test", "--tenant", tenant.slug,
                                "--name", "Ann", "--password", "correct horse battery"])
    # then each is a message naming the field (not a database error, which printed the hashes), exit 1
    for result, field in ((key, "name"), (user, "name"), (email, "email")):
        assert result.exit_code == 1, result.output
        assert f"{field}: at most" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    # and nothing was stored
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) == 0
        assert uow.session.scalar(select(func.count()).where(ApiKey.name == long_name)) == 0


def test_user_create_prints_only_the_user_id_on_stdout_when_the_password_is_asked_for(tenant):
    # when the password comes on standard input, as a script gives it
    result = CliRunner().invoke(
        app, ["user", "create", "bob@example.test", "--tenant", tenant.slug, "--name", "Bob"],
        input="correct horse battery\n")
    # then standard output is the new user's id alone (the prompt goes to stderr)
    assert result.exit_code == 0, result.output
    assert uuid.UUID(result.stdout.strip())
