"""The control list through Starlette's TestClient: what each role sees and may do, filters,
review with a note (CSRF, audit, control characters), the comment's audio, exports."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from itsdangerous import URLSafeTimedSerializer
from openpyxl import load_workbook
from sqlalchemy import select, update
from starlette.testclient import TestClient

from ivr.console import control as control_module
from ivr.console.app import COOKIE, Console, create_app
from ivr.console.security import Session, hash_fingerprint, new_token
from ivr.core.config import parse_config
from ivr.core.errors import ConfigError
from storage.admin import Actor, AdminStore
from storage.control_list import clean_note
from storage.db import make_engine, upgrade
from storage.models import Comment, ControlReview
from storage.store import Store
from tests.control_seed import PHONE, Seeded, seed
from tests.fakes import FakeClock
from tests.helpers import config_data, password_hash, read_csv

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 10:00 in Minsk
ROLES = ("viewer", "controller", "operator", "admin")
LIST = "/control"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("control") / "template.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    admin = AdminStore(engine)
    for role in ROLES:
        admin.add_user(Actor("test"), role, role, password_hash(f"{role}-password"), NOW)
    engine.dispose()
    return path


@pytest.fixture
def site(tmp_path: Path, template_db: Path) -> Iterator[tuple[Console, Seeded]]:
    path = tmp_path / "ivr.sqlite"
    shutil.copy(template_db, path)
    engine = make_engine(f"sqlite:///{path}")
    folder = tmp_path / "comments"
    config = parse_config(config_data(ivr={"comment_dir": str(folder)}))
    seeded = seed(Store(engine), folder / "2026-11-25", NOW)
    yield Console(engine, config, FakeClock(NOW), "test-secret"), seeded
    engine.dispose()


def client_as(console: Console, role: str) -> tuple[TestClient, str]:
    client = TestClient(create_app(console), follow_redirects=False)
    token = new_token()
    user = console.admin.user(role)
    assert user is not None
    session = Session(user.name, token, hash_fingerprint(user.password_hash))
    client.cookies.set(COOKIE, console.codec.dumps(session))
    return client, token


def numbers(html: str) -> list[str]:
    return re.findall(r'data-request="([^"]+)"', html)


def audited(console: Console, action: str) -> list[tuple[str, str | None]]:
    rows, _ = console.admin.audit_rows(action=action)
    return [(r.actor, r.target) for r in reversed(rows)]


def test_the_list_as_a_controller_expects_it(site: tuple[Console, Seeded]) -> None:
    console, seeded = site
    client, _ = client_as(console, "controller")
    page = client.get(LIST)
    assert page.status_code == 200
    assert numbers(page.text) == seeded.order()  # unsatisfied again first, then newest
    assert "+375291234567" not in page.text and "+37529*****67" in page.text
    assert 'href="https://115.xn--90ais/request/R101"' in page.text
    again = re.search(r'<tr class="again[^>]*data-request="103".*?</tr>', page.text, re.S)
    assert again is not None and "снова не доволен" in again[0] and "тон в звуке" in again[0]
    assert "ЖЭС № 1" in page.text and "ул. Кульман, 1" in page.text and "Лифт" in page.text
    assert "SIP INFO" in page.text and "RTP-событие" in page.text
    assert "возвращено на доработку за период: 4" in page.text
    assert "не рассмотрено: 4" in page.text
    assert page.text.count("<audio") == 2  # 103 and 101; 105's recording was purged
    assert "запись удалена" in page.text
    client.cookies.set("ivr_lang", "en")
    english = client.get(LIST)
    assert "Control list" in english.text and "unsatisfied again" in english.text


def test_a_viewer_sees_masked_phones_and_cannot_hear_or_review(
    site: tuple[Console, Seeded],
) -> None:
    console, seeded = site
    for role in ("viewer", "operator"):
        client, token = client_as(console, role)
        page = client.get(LIST).text
        assert numbers(page) == seeded.order()
        assert PHONE not in page and "+37529*****67" in page
        assert "<audio" not in page and 'action="/control/review"' not in page
        assert client.get(f"/control/comment/{seeded.ids['101']}").status_code == 403
        forged = {"survey": seeded.ids["101"], "note": "forged", "csrf": token}
        assert client.post("/control/review", data=forged).status_code == 403
    with console.engine.connect() as conn:
        assert conn.execute(select(ControlReview)).all() == []
    assert audited(console, "control.review") == [] and audited(console, "comment.listen") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("executor=EX-A", ["101"]),
        ("executor=EX-B", ["103", "102"]),
        ("executor=unknown", ["105"]),
        ("category=heating", ["102"]),
        ("category=lift", ["101"]),
        ("round=again", ["103"]),
        ("round=rework", ["103"]),
        ("round=first", ["102", "101", "105"]),
        ("from=2026-10-01&to=2026-10-31", ["103"]),  # the first closing of 103
        ("from=2026-11-23&to=2026-11-24", ["102", "101"]),
        ("executor=EX-B&round=first", ["102"]),
        ("executor=EX-A&category=heating", []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_filters(site: tuple[Console, Seeded], query: str, expected: list[str]) -> None:
    console, _ = site
    client, _ = client_as(console, "viewer")
    page = client.get(f"{LIST}?{query}").text
    assert numbers(page) == expected
    if not expected:
        assert 'id="control-empty"' in page


def test_a_bad_filter_is_a_400_naming_it(site: tuple[Console, Seeded]) -> None:
    """No default put in its place: the page says which parameter is wrong (more cases in
    tests/test_console_hostile.py)."""
    console, _ = site
    client, _ = client_as(console, "viewer")
    page = client.get(f"{LIST}?from=yesterday&round=%3Cscript%3E")
    assert page.status_code == 400 and "from: ожидается дата вида 2026-11-30" in page.text
    assert "<script>" not in page.text
    backwards = client.get(f"{LIST}?from=2026-11-24&to=2026-11-23")
    assert backwards.status_code == 400 and "from: позже, чем to" in backwards.text
    assert client.get(f"{LIST}?page=99999999999999999999999").status_code == 400


def test_review_with_a_note_is_audited_and_the_unreviewed_count_falls(
    site: tuple[Console, Seeded],
) -> None:
    console, seeded = site
    client, token = client_as(console, "controller")
    back = "/control?executor=EX-B"
    note = "звонил в ЖЭС\x1b[31m; повторный выезд\u202e 28.11\nпроверить"
    form = {"survey": seeded.ids["102"], "note": note, "back": back, "csrf": token}
    r = client.post("/control/review", data=form)
    assert r.status_code == 303 and r.headers["location"] == back  # no message in the address
    page = client.get(r.headers["location"]).text
    assert "Заявка R102 отмечена рассмотренной" in page
    assert "Заявка R102 отмечена рассмотренной" not in client.get(back).text  # shown once
    assert "не рассмотрено: 1" in page  # of executor B's two
    stored = "звонил в ЖЭС [31m; повторный выезд 28.11 проверить"
    assert stored in page and "\x1b" not in page and "\u202e" not in page
    assert numbers(client.get(f"{LIST}?reviewed=no").text) == ["103", "101", "105"]
    assert numbers(client.get(f"{LIST}?reviewed=yes").text) == ["102"]
    rows, _ = console.admin.audit_rows(action="control.review")
    assert [(x.actor, x.target, x.before, x.after) for x in rows] == [
        ("controller", "R102", None, {"survey": seeded.ids["102"], "note": stored})
    ]
    assert rows[0].address == "testclient"
    # Reviewed again: the note replaced, the earlier review in the audit entry's "before".
    admin, admin_token = client_as(console, "admin")
    form = {"survey": seeded.ids["102"], "note": "ok", "back": "https://evil.example/"}
    admin.post("/control/review", data={**form, "csrf": admin_token})
    rows, _ = console.admin.audit_rows(action="control.review")
    assert rows[0].actor == "admin" and rows[0].before["note"] == stored
    assert rows[0].before["by"] == "controller"


def test_review_refusals(site: tuple[Console, Seeded]) -> None:
    console, seeded = site
    client, token = client_as(console, "controller")
    no_token = client.post("/control/review", data={"survey": seeded.ids["101"], "note": "x"})
    assert no_token.status_code == 403
    satisfied = client.post("/control/review", data={"survey": seeded.ids["104"], "csrf": token})
    assert satisfied.status_code == 303 and satisfied.headers["location"] == "/control"
    assert "Не найдено." in client.get("/control").text
    off_site = client.post("/control/review", data={"survey": "x", "back": "//evil.example",
                                                     "csrf": token})  # fmt: skip
    assert off_site.headers["location"] == "/control"
    with console.engine.connect() as conn:
        assert conn.execute(select(ControlReview)).all() == []
    assert audited(console, "control.review") == []


def test_a_crafted_link_or_cookie_puts_no_words_on_a_page(site: tuple[Console, Seeded]) -> None:
    """What a POST did is said on the next page through a signed cookie; a link's ``msg`` or a
    forged cookie is not shown."""
    console, _ = site
    client, _token = client_as(console, "controller")
    words = "Ваш пароль истёк: позвоните по номеру"
    assert words not in client.get(f"/control?msg={words}").text
    forged = URLSafeTimedSerializer("not the console's secret", salt="ivr-console-flash")
    client.cookies.set("ivr_flash", forged.dumps(words))
    assert words not in client.get("/control").text


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        (None, None),
        ("   ", None),
        ("ok", "ok"),
        ("a\r\nb\tc", "a b c"),
        ("\x1b]0;owned\x07title", "]0;owned title"),
        ("right\u202eto\u200bleft", "right to left"),
        ("x" * 600, "x" * 500),
    ],
    ids=["none", "blank", "plain", "newlines", "escape", "bidi", "long"],
)
def test_clean_note(raw: str | None, kept: str | None) -> None:
    assert clean_note(raw) == kept


def test_the_comment_plays_for_a_controller_and_each_listen_is_audited(
    site: tuple[Console, Seeded],
) -> None:
    console, seeded = site
    client, _ = client_as(console, "controller")
    url = f"/control/comment/{seeded.ids['101']}"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert r.content == seeded.wavs["101"].read_bytes() and r.content[:4] == b"RIFF"
    assert "no-store" in r.headers["cache-control"]
    part = client.get(url, headers={"Range": "bytes=100-199"})  # the player seeking
    assert part.status_code == 206 and part.content == r.content[100:200]
    client.get(url, headers={"Range": "bytes=0-"})  # played again from the start
    assert audited(console, "comment.listen") == [("controller", "R101"), ("controller", "R101")]
    assert client.get(f"/control/comment/{seeded.ids['105']}").status_code == 404  # purged
    assert client.get(f"/control/comment/{seeded.ids['102']}").status_code == 404  # none
    assert client.get("/control/comment/no-such-survey").status_code == 404
    admin, _ = client_as(console, "admin")
    assert admin.get(url).status_code == 200


def test_only_recordings_under_the_comment_folder_are_served(
    site: tuple[Console, Seeded], tmp_path: Path
) -> None:
    console, seeded = site
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(seeded.wavs["103"].read_bytes())
    for path in (str(outside), str(seeded.wavs["103"].parent / ".." / ".." / "elsewhere.wav")):
        with console.engine.begin() as conn:
            conn.execute(
                update(Comment).where(Comment.survey_id == seeded.ids["103"]).values(path=path)
            )
        client, _ = client_as(console, "controller")
        assert client.get(f"/control/comment/{seeded.ids['103']}").status_code == 404


def test_exports_hold_the_page_rows_and_the_filters(site: tuple[Console, Seeded]) -> None:
    console, seeded = site
    client, _ = client_as(console, "viewer")
    query = "executor=EX-B&from=2026-10-01&to=2026-11-26"
    page = numbers(client.get(f"{LIST}?{query}").text)
    assert page == ["103", "102", "103"]
    r = client.get(f"{LIST}?{query}&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert (
        r.content.startswith(b"\xef\xbb\xbf") and "attachment" in r.headers["content-disposition"]
    )
    filters, table = read_csv(r.content)
    assert filters == [("from", "2026-10-01"), ("to", "2026-11-26"), ("executor", "EX-B")]
    header, *rows = table
    assert header[:3] == ["Заявка", "Ссылка", "Исполнитель"]
    assert [row[0] for row in rows] == page
    assert rows[0][2] == "'=ЖЭС № 2"  # formula-safe
    assert rows[0][1] == "https://115.xn--90ais/request/R103"
    assert rows[0][5] == "'+37529*****67" and PHONE not in r.text  # + starts a formula
    assert rows[0][9] == "тон в звуке" and rows[0][11] == "да" and rows[0][12] == "2,5000"
    x = client.get(f"{LIST}?{query}&format=xlsx")
    assert x.status_code == 200 and x.headers["content-type"].endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(x.content), read_only=True)
    data = [list(row) for row in book["data"].iter_rows(values_only=True)]
    assert [str(row[0]) for row in data[1:]] == page
    assert data[1][2] == "'=ЖЭС № 2" and data[1][12] == 2.5
    assert [list(r) for r in book["filters"].iter_rows(values_only=True)][1:] == [
        ["from", "2026-10-01"], ["to", "2026-11-26"], ["executor", "EX-B"],
    ]  # fmt: skip
    assert [a for a, _ in audited(console, "control.export")] == ["viewer", "viewer"]


def test_the_export_is_the_whole_list_not_one_page(
    site: tuple[Console, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    console, seeded = site
    monkeypatch.setattr(control_module, "PAGE_SIZE", 2)
    client, _ = client_as(console, "viewer")
    first = client.get(LIST).text
    assert numbers(first) == ["103", "102"] and "страница 1 из 2" in first
    assert numbers(client.get(f"{LIST}?page=2").text) == ["101", "105"]
    _, table = read_csv(client.get(f"{LIST}?format=csv").content)
    assert [row[0] for row in table[1:]] == seeded.order()


def test_the_request_link_follows_the_configured_template(
    site: tuple[Console, Seeded], tmp_path: Path
) -> None:
    console, _ = site
    for template, link in (
        ("http://portal.example/r?n={number}&id={request_id}",
         'href="http://portal.example/r?n=101&amp;id=R101"'),
        ("", None),
    ):  # fmt: skip
        console.file_config = parse_config(
            config_data(control={"request_url": template}, ivr=console.file_config.ivr.model_dump())
        )
        console._effective = None
        client, _ = client_as(console, "viewer")
        page = client.get(LIST).text
        if link is None:
            assert '<a href="http' not in page and 'class="request">101<' in page
        else:
            assert link in page


@pytest.mark.parametrize(
    "template",
    ["ftp://x/{request_id}", "https://x/r", "https://x/{id}", "https://u:p@x/{number}",
     "https://x/{request_id.__class__}", "https://x/{"],
    ids=["scheme", "no_field", "unknown_field", "credentials", "attribute", "broken"],
)  # fmt: skip
def test_a_bad_request_url_names_the_key(template: str) -> None:
    with pytest.raises(ConfigError, match=r"control\.request_url"):
        parse_config(config_data(control={"request_url": template}))


def test_user_add_with_the_controller_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ivr.entry.cli import main

    path = tmp_path / "config.yaml"
    db = f"sqlite:///{tmp_path / 'ivr.sqlite'}"
    path.write_text(yaml.safe_dump(config_data(database=db)))
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-pw\n"))
    assert main(["--config", str(path), "user", "add", "kira", "--role", "controller",
                 "--password-stdin"]) == 0  # fmt: skip
    assert main(["--config", str(path), "user", "list"]) == 0
    assert re.search(r"kira\s+controller\s+active", capsys.readouterr().out)
    engine = make_engine(db)
    try:
        assert AdminStore(engine).user("kira").role == "controller"  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_the_comment_file_is_what_the_node_recorded(site: tuple[Console, Seeded]) -> None:
    console, seeded = site
    client, _ = client_as(console, "controller")
    body = client.get(f"/control/comment/{seeded.ids['103']}").content
    with console.engine.connect() as conn:
        digest = conn.scalar(select(Comment.sha256).where(Comment.survey_id == seeded.ids["103"]))
    assert hashlib.sha256(body).hexdigest() == digest


def test_the_example_configuration_documents_the_default_link() -> None:
    from ivr.core.config import load_config

    root = Path(__file__).resolve().parent.parent
    env = {"PORTAL_TOKEN": "t", "SIP_PASSWORD": "p"}
    example = load_config(root / "config.example.yaml", env=env)
    assert example.control == parse_config(config_data()).control
    assert example.control.link("R-1", "1") == "https://115.xn--90ais/request/R-1"


FILTER_SETS = [
    {}, {"executor": "EX-A"}, {"executor": "EX-B"}, {"executor": "unknown"},
    {"category": "heating"}, {"category": "Ремонт крыши"}, {"category": "unknown"},
    {"round": "first"}, {"round": "rework"}, {"round": "again"},
    {"executor": "EX-B", "round": "first"}, {"executor": "EX-A", "category": "heating"},
]  # fmt: skip


def test_the_page_summary_agrees_with_the_control_counts(store: Store, tmp_path: Path) -> None:
    """On SQLite and PostgreSQL: one grouped query gives what control_counts gives for every
    filter, before and after a review, and the choices of the period."""
    from datetime import date

    from storage.analytics import Filters
    from storage.control_entries import control_counts, mark_reviewed
    from storage.control_list import control_summary

    seeded = seed(store, tmp_path / "comments", NOW)
    mark_reviewed(store.engine, seeded.ids["102"], "kira", None, NOW)
    for period in ((date(2026, 10, 1), date(2026, 11, 26)), (date(2026, 11, 20), NOW.date())):
        for extra in FILTER_SETS:
            f = Filters(*period, **extra)  # type: ignore[arg-type]
            summary = control_summary(store.engine, f)
            assert (summary.total, summary.unreviewed) == control_counts(store.engine, f), extra
    summary = control_summary(store.engine, Filters(date(2026, 10, 1), date(2026, 11, 26)))
    assert summary.executors == [("EX-B", "=ЖЭС № 2"), ("EX-A", "ЖЭС № 1"), ("unknown", "unknown")]
    assert summary.categories == ["heating", "lift", "Ремонт крыши", "unknown"]


def test_pages_follow_the_entry_shown_last(
    site: tuple[Console, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page starts after the last entry shown and the previous one ends before the
    first (keyset links); a page number without its mark (an old link) still works."""
    import html

    import ivr.console.control as control

    monkeypatch.setattr(control, "PAGE_SIZE", 1)
    console, seeded = site
    client, _ = client_as(console, "viewer")

    def link(page: str, text: str) -> str:
        found = re.search(rf'<a href="([^"]+)">[^<]*{text}', page)
        assert found is not None, text
        return html.unescape(found.group(1))

    page = client.get(LIST).text
    shown = numbers(page)
    for _ in seeded.order()[1:]:
        following = link(page, "вперёд")
        assert "after=" in following
        page = client.get(following).text
        shown += numbers(page)
    assert shown == seeded.order() and "вперёд" not in page.split('class="pages"')[-1]
    for expected in reversed(seeded.order()[:-1]):
        page = client.get(link(page, "← назад")).text
        assert numbers(page) == [expected]
    assert numbers(client.get(f"{LIST}?page=3").text) == [seeded.order()[2]]
    assert client.get(f"{LIST}?page=2&after=garbage").status_code == 400
