"""Who owes what, when, and which reminders are due on a given day (pure; the real calendar).

Personas: France (State Party since 2010), Mexico (State Party, entry into force not on
file), Cuba (State Party since 1 Oct 2016, initial report due 30 Mar 2017), Angola
(signatory), the United States (not a signatory), and "Iceland-2017" — Iceland as if it had
joined on 1 Feb 2017, for an initial report due inside the year.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from config.calendar import load_calendar, load_contacts, read_calendar, read_contacts
from config.registry import DataFileError, load_registry
from parsers.obligations import (
    Calendar,
    Contact,
    Obligation,
    format_date,
    format_span,
    obligation_status,
    reminders_due,
)

REGISTRY = load_registry()
CALENDAR = load_calendar()
CONTACTS = load_contacts()
FRA, MEX, CUB, AGO, USA = (REGISTRY.get(i) for i in ("FRA", "MEX", "CUB", "AGO", "USA"))
ISL_2017 = replace(REGISTRY.get("ISL"), ccm_entry_into_force=date(2017, 2, 1))
PERSONAS = (FRA, MEX, CUB, AGO, USA, ISL_2017)


def obligation(kind: str, cycle: str) -> Obligation:
    return next(o for o in CALENDAR.obligations if (o.kind, o.cycle) == (kind, cycle))


DELEGATION = obligation("delegation", "7MSP")
ANNUAL_2016 = obligation("article7", "2016")
INITIAL = obligation("article7_initial", "initial")


# --- the calendar ---------------------------------------------------------------------------


def test_the_packaged_calendar_holds_the_7msp_the_annual_and_the_initial_reports() -> None:
    assert CALENDAR.timezone == "Europe/Zurich"
    assert DELEGATION.due == date(2017, 8, 18)  # Friday, from meetings.csv
    assert DELEGATION.label_in("en") == (
        "Details of delegations for the Seventh Meeting of States Parties"
    )
    assert DELEGATION.label_in("fr") == (
        "Composition des délégations pour la Septième Réunion des États parties"
    )
    assert DELEGATION.detail["en"] == "Palais des Nations, Geneva, 4–6 September 2017"
    assert DELEGATION.owed_by == {"state_party", "signatory", "non_signatory"}  # invited
    assert ANNUAL_2016.due == date(2017, 4, 30)
    assert ANNUAL_2016.label_in("es").endswith("correspondiente a 2016")
    assert obligation("article7", "2017").due == date(2018, 4, 30)
    assert INITIAL.due is None and INITIAL.submission == ("article7", "initial")
    assert CALENDAR.remind == {"state_party", "signatory"}
    assert CALENDAR.offsets_for("delegation") == (30, 14, 7, 2, -7)
    assert CALENDAR.working_days_only
    assert CALENDAR.send_from == time(8, 0)
    assert CALENDAR.today(time(7, 59), date(2017, 8, 11)) == date(2017, 8, 10)
    assert CALENDAR.today(time(8, 0), date(2017, 8, 11)) == date(2017, 8, 11)


def test_every_contact_is_a_known_state_in_a_language_we_write() -> None:
    assert CONTACTS["FRA"][0] == Contact(
        "FRA", "dfra.geneve@diplomatie.gouv.fr", "fr", CONTACTS["FRA"][0].source
    )
    assert CONTACTS["MEX"][0].language == "es" and CONTACTS["AUS"][0].language == "en"
    assert all("illustrative" in c.source for cs in CONTACTS.values() for c in cs)
    assert "AGO" not in CONTACTS  # no contact is not an error


# --- who owes which report --------------------------------------------------------------------


def test_the_2016_report_is_owed_by_states_parties_in_force_by_31_december_2016() -> None:
    assert ANNUAL_2016.due_for(FRA) == date(2017, 4, 30)
    assert ANNUAL_2016.due_for(CUB) == date(2017, 4, 30)  # EIF 1 Oct 2016: part of the year
    joined_new_year = replace(FRA, ccm_entry_into_force=date(2017, 1, 1))
    assert ANNUAL_2016.due_for(joined_new_year) is None  # a party for none of 2016
    assert ANNUAL_2016.due_for(replace(FRA, ccm_entry_into_force=date(2016, 12, 31)))
    assert ANNUAL_2016.due_for(ISL_2017) is None
    assert ANNUAL_2016.due_for(AGO) is None and ANNUAL_2016.due_for(USA) is None


def test_a_state_party_whose_entry_into_force_is_not_on_file_still_owes_it_flagged() -> None:
    assert MEX.ccm_entry_into_force is None
    assert ANNUAL_2016.due_for(MEX) == date(2017, 4, 30)
    assert ANNUAL_2016.eif_unconfirmed(MEX) and not ANNUAL_2016.eif_unconfirmed(FRA)
    (status,) = [
        s
        for s in obligation_status(CALENDAR, PERSONAS, (), CONTACTS, date(2017, 4, 1))
        if s.obligation == ANNUAL_2016
    ]
    assert status.expected == ("CUB", "FRA", "MEX") and status.unconfirmed == ("MEX",)
    (mexico,) = [
        r
        for r in reminders_due(CALENDAR, PERSONAS, (), CONTACTS, date(2017, 4, 28))
        if r.state_iso3 == "MEX" and r.obligation == ANNUAL_2016
    ]
    assert "EIF unconfirmed" in mexico.reason


def test_an_initial_report_is_due_180_days_after_each_states_own_entry_into_force() -> None:
    assert INITIAL.due_for(CUB) == date(2017, 3, 30)  # as states.csv says
    assert INITIAL.due_for(ISL_2017) == date(2017, 7, 31)
    assert INITIAL.due_for(FRA) is None  # due in 2011: before this service's records
    assert INITIAL.due_for(MEX) is None  # no EIF, no date
    assert INITIAL.due_for(replace(AGO, ccm_entry_into_force=date(2017, 2, 1))) is None


def test_delegations_are_expected_from_states_parties_and_signatories() -> None:
    statuses = obligation_status(
        CALENDAR,
        REGISTRY,
        {("FRA", "delegation", "7MSP"), ("USA", "delegation", "7MSP"), ("MEX", "article7", "2016")},
        CONTACTS,
        date(2017, 8, 11),
    )
    (status,) = [s for s in statuses if s.obligation == DELEGATION]
    assert len(status.expected) == 119  # 100 States Parties + 19 signatories (February 2017)
    assert "AGO" in status.expected and "USA" not in status.expected
    assert status.received == ("FRA",)
    assert len(status.missing) == 118 and "MEX" in status.missing
    assert "AGO" in status.no_contact and "MEX" not in status.no_contact
    assert status.days_left == 7
    (initial,) = [s for s in statuses if s.obligation == INITIAL]
    assert initial.days_left is None  # each State its own date
    assert initial.expected == ("CUB",) and initial.no_contact == ("CUB",)


# --- which reminders, which day -----------------------------------------------------------------


def scheduled(year: int = 2017) -> dict[str, date]:
    """Every reminder key of the personas and the day it is due, walking the whole year."""
    found: dict[str, date] = {}
    day = date(year, 1, 1)
    while day.year == year:
        for r in reminders_due(CALENDAR, PERSONAS, (), CONTACTS, day, catch_up_days=0):
            assert r.key not in found, f"{r.key} due twice"
            assert r.reminder_date == day
            found[r.key] = day
        day += timedelta(days=1)
    return found


def test_across_2017_each_reminder_falls_on_its_working_day_for_the_states_that_owe() -> None:
    d = date
    expected = {
        # 7MSP, due Friday 18 August: States Parties and signatories, not the others.
        **{
            f"delegation:7MSP:{iso3}:{offset}": day
            for iso3 in ("AGO", "CUB", "FRA", "ISL", "MEX")
            for offset, day in (
                (30, d(2017, 7, 19)),
                (14, d(2017, 8, 4)),
                (7, d(2017, 8, 11)),
                (2, d(2017, 8, 16)),
                (-7, d(2017, 8, 25)),
            )
        },
        # Annual report on 2016, due Sunday 30 April: the weekend ones move to Friday.
        **{
            f"article7:2016:{iso3}:{offset}": day
            for iso3 in ("CUB", "FRA", "MEX")
            for offset, day in (
                (30, d(2017, 3, 31)),
                (14, d(2017, 4, 14)),  # Sunday 16 April
                (7, d(2017, 4, 21)),  # Sunday 23 April
                (2, d(2017, 4, 28)),
                (-7, d(2017, 5, 5)),  # Sunday 7 May, still after the deadline
            )
        },
        # Initial reports: Cuba's due Thursday 30 March, Iceland-2017's Monday 31 July.
        "article7_initial:initial:CUB:30": d(2017, 2, 28),
        "article7_initial:initial:CUB:14": d(2017, 3, 16),
        "article7_initial:initial:CUB:7": d(2017, 3, 23),
        "article7_initial:initial:CUB:2": d(2017, 3, 28),
        "article7_initial:initial:CUB:-7": d(2017, 4, 6),
        "article7_initial:initial:ISL:30": d(2017, 6, 30),  # Saturday 1 July
        "article7_initial:initial:ISL:14": d(2017, 7, 17),
        "article7_initial:initial:ISL:7": d(2017, 7, 24),
        "article7_initial:initial:ISL:2": d(2017, 7, 28),  # Saturday 29 July
        "article7_initial:initial:ISL:-7": d(2017, 8, 7),
    }
    assert scheduled() == expected
    assert all(day.weekday() < 5 for day in expected.values())


def test_without_working_days_only_a_reminder_may_fall_on_a_sunday() -> None:
    calendar = replace(CALENDAR, working_days_only=False)
    (r,) = [
        r
        for r in reminders_due(calendar, [FRA], (), CONTACTS, date(2017, 4, 16), catch_up_days=0)
        if r.obligation == ANNUAL_2016
    ]
    assert r.offset_days == 14


def test_an_overdue_notice_moved_off_a_weekend_stays_after_the_deadline() -> None:
    calendar = Calendar(obligations=(), overdue_after=1, working_days_only=True)
    friday = date(2017, 8, 18)
    assert calendar.reminder_date(friday, -1) == date(2017, 8, 21)  # Saturday -> Monday
    assert calendar.reminder_date(friday, 1) == date(2017, 8, 17)
    assert calendar.reminder_date(date(2017, 8, 21), 2) == date(2017, 8, 18)  # Sat -> Fri


def test_who_has_submitted_is_not_reminded() -> None:
    submitted = {
        ("FRA", "delegation", "7MSP"),
        ("CUB", "article7", "initial"),  # meets the initial report, not the 2016 one
    }
    on_aug_11 = reminders_due(CALENDAR, PERSONAS, submitted, CONTACTS, date(2017, 8, 11))
    assert sorted(r.key for r in on_aug_11 if r.obligation == DELEGATION) == [
        f"delegation:7MSP:{iso3}:7" for iso3 in ("AGO", "CUB", "ISL", "MEX")
    ]
    on_mar_28 = reminders_due(CALENDAR, PERSONAS, submitted, CONTACTS, date(2017, 3, 28))
    assert [r.key for r in on_mar_28] == []
    on_apr_28 = reminders_due(CALENDAR, PERSONAS, submitted, CONTACTS, date(2017, 4, 28))
    assert "article7:2016:CUB:2" in {r.key for r in on_apr_28}


def test_after_an_outage_only_the_latest_missed_reminder_is_caught_up_once() -> None:
    def due(day: date) -> dict[str, int]:
        return {
            r.state_iso3: r.offset_days
            for r in reminders_due(CALENDAR, [FRA, MEX], (), CONTACTS, day)
            if r.obligation == DELEGATION
        }

    # Down from 2 to 11 August: the 14-day (4 Aug) and the 7-day (11 Aug) were missed.
    assert due(date(2017, 8, 12)) == {"FRA": 7, "MEX": 7}
    (fr,) = [
        r
        for r in reminders_due(CALENDAR, [FRA], (), CONTACTS, date(2017, 8, 12))
        if r.obligation == DELEGATION
    ]
    assert fr.reminder_date == date(2017, 8, 11) and fr.reason.startswith("catch-up")
    assert due(date(2017, 8, 11)) == {"FRA": 7, "MEX": 7}  # 4 Aug is in the window: not both
    assert due(date(2017, 8, 10)) == {"FRA": 14, "MEX": 14}
    assert due(date(2017, 7, 27)) == {}  # 19 July is more than 7 days ago: gone
    assert due(date(2017, 9, 5)) == {}  # the overdue notice is not caught up for ever


def test_a_reminder_names_its_key_contact_language_and_why() -> None:
    reminders = {
        r.state_iso3: r
        for r in reminders_due(CALENDAR, [FRA, MEX, AGO], (), CONTACTS, date(2017, 8, 25))
    }
    fr = reminders["FRA"]
    assert fr.key == "delegation:7MSP:FRA:-7"
    assert fr.contact is not None and fr.contact.address == "dfra.geneve@diplomatie.gouv.fr"
    assert (fr.language, fr.due_date) == ("fr", date(2017, 8, 18))
    assert fr.reason == "overdue notice, 7 days after the deadline 2017-08-18"
    assert reminders["MEX"].language == "es"
    ago = reminders["AGO"]
    assert ago.contact is None and ago.reason.endswith("; no contact")


def test_dates_read_naturally_in_each_language() -> None:
    friday = date(2017, 8, 18)
    assert format_date(friday, "en") == "Friday 18 August 2017"
    assert format_date(friday, "fr") == "vendredi 18 août 2017"
    assert format_date(friday, "es") == "viernes 18 de agosto de 2017"
    assert format_date(date(2017, 9, 1), "fr", weekday=False) == "1er septembre 2017"
    assert format_span(date(2017, 9, 4), date(2017, 9, 6), "es") == (
        "del 4 al 6 de septiembre de 2017"
    )


# --- a wrong file stops the program, naming what is wrong ----------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[reminders]\noffsets = [30, 0]\n", "reminders.offsets"),
        ("[reminders]\nremind = ['state_party', 'friends']\n", "reminders.remind"),
        ('[[meeting]]\ncode = "9MSP"\n', "meeting[0].code"),
        ('[[meeting]]\ncode = "6MSP"\nlabel = {en="x", fr="x", es="x"}\n', "delegations_due"),
        ('timezone = "Europe/Atlantis"\n', "timezone"),
        ('[reminders]\nsend_from = "8h"\n', "reminders.send_from"),
        (
            '[article7]\ndue = "31-04"\nreporting_years = [2016]\nin_force_by = "12-31"\n'
            'label = {en="a", fr="b", es="c"}\n',
            "article7.due",
        ),
        ("[reminders.offsets_by_kind]\ndigest = [1]\n", "offsets_by_kind.digest"),
    ],
)
def test_a_wrong_calendar_is_refused_naming_the_key(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFileError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        read_calendar(path)


def test_a_wrong_contact_row_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("# comment\niso3,address,language,source\nFRA,a@b.fr,de,x\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="line 3: language 'de'"):
        read_contacts(path, REGISTRY)
    path.write_text("iso3,address,language,source\nXXX,a@b.fr,fr,x\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="unknown iso3"):
        read_contacts(path, REGISTRY)
