"""Which State sent a mail: names, the directory, and identify_state's rules and traps.

The personas are a few missions with the (illustrative) domains of config/data/missions.csv;
the registry is the real one, so the confusable names are the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from config.registry import load_registry
from parsers.states import (
    MissionDirectory,
    StateRegistry,
    StateResult,
    identify_state,
    normalise_name,
    own_text,
    unusable_domain_reason,
)

REGISTRY: StateRegistry = load_registry()
DIRECTORY = MissionDirectory(
    addresses={
        "dfra.geneve@diplomatie.gouv.fr": "FRA",
        "chile.ginebra@minrel.gob.cl": "CHL",
        "mission.holy-see@ties.itu.int": "VAT",
    },
    domains={
        "diplomatie.gouv.fr": "FRA",
        "eda.admin.ch": "CHE",
        "minrel.gob.cl": "CHL",
        "maec.es": "ESP",
        "sre.gob.mx": "MEX",
        "rree.gob.pe": "PER",
        "diplomatie.gouv.sn": "SEN",
        "dfa.ie": "IRL",
        "utn.is": "ISL",
        "bmeia.gv.at": "AUT",
        "foreignaffairs.gov.ng": "NGA",
    },
)


def identify(
    body: str = "",
    *,
    sender: str = "someone@gmail.com",
    reply_to: Sequence[str] = (),
    subject: str = "",
    attachments: Sequence[str] = (),
    threshold: float = 0.75,
) -> StateResult:
    return identify_state(
        from_addr=sender,
        reply_to=reply_to,
        subject=subject,
        body=body,
        attachment_texts=attachments,
        registry=REGISTRY,
        directory=DIRECTORY,
        threshold=threshold,
    )


def rules(result: StateResult, target: str | None = None) -> set[str]:
    return {e.rule for e in result.evidence if target is None or e.target == target}


def candidates(result: StateResult) -> set[str]:
    return {iso3 for iso3, _ in result.candidates}


SIGNATURE = """
--
Permanent Mission of France to the United Nations Office at Geneva
Palais des Nations, CH-1211 Geneva 10, Switzerland
Tel. +41 22 758 91 11
"""

UN_SIGNATURE = """
Implementation Support Unit, Convention on Cluster Munitions
United Nations Office at Geneva, Palais des Nations
CH-1211 Geneva 10, Switzerland
"""


# --- names ----------------------------------------------------------------------------------


def test_normalisation_folds_case_accents_articles_apostrophes_and_punctuation() -> None:
    assert normalise_name("Côte d’Ivoire") == normalise_name("COTE D'IVOIRE") == "cote d ivoire"
    assert normalise_name("the Niger") == normalise_name("Niger (the)") == "niger"
    assert normalise_name("l'Autriche") == "autriche"
    assert normalise_name("St. Kitts & Nevis") == normalise_name("Saint Kitts and Nevis")
    assert normalise_name("Trinité-et-Tobago") == "trinite and tobago"


@pytest.mark.parametrize(
    ("text", "iso3", "matched"),
    [
        ("Niger to the United Nations Office", "NER", "Niger"),
        ("Nigeria to the United Nations Office", "NGA", "Nigeria"),
        ("the Republic of the Niger", "NER", "Republic of the Niger"),
        ("Guinea-Bissau presents", "GNB", "Guinea-Bissau"),
        ("Guinea presents", "GIN", "Guinea"),
        ("Equatorial Guinea", "GNQ", "Equatorial Guinea"),
        ("Papua New Guinea", "PNG", "Papua New Guinea"),
        ("Dominican Republic", "DOM", "Dominican Republic"),
        ("Dominica to the UN", "DMA", "Dominica"),
        ("South Sudan", "SSD", "South Sudan"),
        ("the Sudan", "SDN", "Sudan"),
        ("the Democratic Republic of the Congo", "COD", "Democratic Republic of the Congo"),
        ("the Republic of the Congo", "COG", "Republic of the Congo"),
        ("the Republic of Korea", "KOR", "Republic of Korea"),
        (
            "the Democratic People's Republic of Korea",
            "PRK",
            "Democratic People's Republic of Korea",
        ),
        ("Austria", "AUT", "Austria"),
        ("Australia", "AUS", "Australia"),
        ("Iceland", "ISL", "Iceland"),
        ("Ireland", "IRL", "Ireland"),
        ("Mali", "MLI", "Mali"),
        ("Malawi", "MWI", "Malawi"),
        ("Malta", "MLT", "Malta"),
        ("Guinée équatoriale auprès", "GNQ", "Guinée équatoriale"),
        ("la République du Niger auprès", "NER", "République du Niger"),
        ("Soudan du Sud", "SSD", "Soudan du Sud"),
        ("República Dominicana ante", "DOM", "República Dominicana"),
        ("Níger ante", "NER", "Níger"),
    ],
)
def test_the_longest_name_at_the_start_wins(text: str, iso3: str, matched: str) -> None:
    hit = REGISTRY.match_prefix(text)
    assert hit is not None
    assert (hit[0].iso3, hit[1]) == (iso3, matched)


def test_a_name_must_end_on_a_word_boundary() -> None:
    assert REGISTRY.match_prefix("Malian delegation") is None
    assert REGISTRY.match_prefix("Nigerien mission") is None
    assert REGISTRY.match_prefix("Korea") is None
    assert REGISTRY.match_prefix("to France") is None


# --- the directory ----------------------------------------------------------------------------


def test_a_subdomain_matches_its_parent_ministry_domain() -> None:
    assert DIRECTORY.lookup("x@mission.geneve.diplomatie.gouv.fr") == ("FRA", "domain")
    assert DIRECTORY.lookup("<DFRA.geneve@diplomatie.gouv.fr>") == ("FRA", "address")
    assert DIRECTORY.lookup("x@gouv.fr") is None


def test_public_mail_un_and_shared_domains_cannot_identify_a_state() -> None:
    for domain in (
        "gmail.com",
        "mail.yahoo.com",
        "hotmail.fr",
        "outlook.com.mx",
        "unog.ch",
        "ties.itu.int",
    ):
        assert unusable_domain_reason(domain) is not None, domain
    for domain in ("diplomatie.gouv.fr", "eda.admin.ch", "livelink.gov.xx"):
        assert unusable_domain_reason(domain) is None, domain
    with pytest.raises(ValueError, match="United Nations"):
        MissionDirectory(domains={"unog.ch": "CHE"})


# --- the sender ---------------------------------------------------------------------------------


def test_it_names_the_state_of_a_listed_mission_address() -> None:
    result = identify("Please find attached our note.", sender="dfra.geneve@diplomatie.gouv.fr")
    assert result.iso3 == "FRA"
    assert rules(result) == {"sender-address"}
    assert result.confidence == pytest.approx(0.9)
    assert "dfra.geneve@diplomatie.gouv.fr (France)" in result.reason


def test_it_names_the_state_of_a_ministry_subdomain() -> None:
    result = identify("Ci-joint.", sender="desk@mission.geneve.diplomatie.gouv.fr")
    assert result.iso3 == "FRA"
    assert rules(result) == {"sender-domain"}
    assert "diplomatie.gouv.fr" in result.reason


def test_a_reply_to_address_alone_is_not_enough() -> None:
    result = identify("Please see attached.", reply_to=["chile.ginebra@minrel.gob.cl"])
    assert result.iso3 is None
    assert rules(result, "CHL") == {"reply-to-address"}
    assert result.reason.startswith("weak evidence: CHL 0.60")


def test_a_reply_to_address_adds_to_a_mission_phrase() -> None:
    result = identify(
        "Permanent Mission of Chile\nAttached: list of delegates.",
        reply_to=["chile.ginebra@minrel.gob.cl"],
    )
    assert result.iso3 == "CHL"
    assert rules(result) == {"reply-to-address", "mission-name"}
    assert result.confidence == pytest.approx(0.88)


# --- the mission phrases, EN / FR / ES ------------------------------------------------------------


def test_a_free_mail_note_verbale_from_niger_is_identified_by_its_opening() -> None:
    body = (
        "La Mission permanente de la République du Niger auprès de l'Office des Nations Unies "
        "et des autres organisations internationales à Genève présente ses compliments à "
        "l'Unité d'appui à l'application de la Convention sur les armes à sous-munitions et "
        "a l'honneur de lui transmettre la composition de sa délégation.\n\nGenève, le 10 août 2017"
    )
    result = identify(body, sender="mission.niger.geneve@gmail.com")
    assert result.iso3 == "NER"
    assert result.confidence == pytest.approx(0.85)
    assert rules(result) == {"note-verbale-opening"}
    assert "note-verbale opening" in result.reason
    assert "gmail.com is a public mail service" in result.reason
    assert "NGA" not in candidates(result)


def test_nigeria_is_not_niger() -> None:
    body = (
        "The Permanent Mission of the Federal Republic of Nigeria presents its compliments to "
        "the Implementation Support Unit of the Convention on Cluster Munitions."
    )
    result = identify(body)
    assert result.iso3 == "NGA"
    assert candidates(result) == {"NGA"}
    assert rules(result) == {"note-verbale-opening"}


def test_a_spanish_note_verbale_opening_counts() -> None:
    body = (
        "La Misión Permanente del Perú ante la Oficina de las Naciones Unidas en Ginebra "
        "saluda muy atentamente a la Unidad de Apoyo a la Aplicación de la Convención."
    )
    result = identify(body)
    assert result.iso3 == "PER"
    assert rules(result) == {"note-verbale-opening"}


def test_a_mission_named_without_an_opening_is_not_enough_on_its_own() -> None:
    result = identify("Best regards,\nPermanent Mission of Austria\nGeneva")
    assert result.iso3 is None
    assert rules(result, "AUT") == {"mission-name"}
    assert candidates(result) == {"AUT"}
    assert result.reason.startswith("weak evidence: AUT 0.70 < 0.75")


def test_has_the_honour_opens_a_note_too_but_only_in_the_same_sentence() -> None:
    fr = identify(
        "La Mission permanente de la France a l'honneur de transmettre ci-joint la "
        "composition de sa délégation."
    )
    assert (fr.iso3, rules(fr)) == ("FRA", {"note-verbale-opening"})
    es = identify("La Misión Permanente de Colombia tiene el honor de remitir el informe.")
    assert (es.iso3, rules(es)) == ("COL", {"note-verbale-opening"})
    other = identify(
        "Meeting with the Permanent Mission of Austria. The ISU presents its "
        "compliments to all delegations."
    )
    assert (other.iso3, rules(other)) == (None, {"mission-name"})


def test_austria_is_not_australia_and_iceland_is_not_ireland() -> None:
    aut = identify("The Permanent Mission of Austria presents its compliments to the ISU.")
    assert (aut.iso3, candidates(aut)) == ("AUT", {"AUT"})
    isl = identify("La Mission permanente de l'Islande présente ses compliments à l'Unité d'appui.")
    assert (isl.iso3, candidates(isl)) == ("ISL", {"ISL"})


def test_the_addressee_of_a_note_is_not_its_sender() -> None:
    body = (
        "The Permanent Mission of Chile presents its compliments to the Permanent Mission of "
        "France and has the honour to refer to the Seventh Meeting of States Parties.\n\n"
        "The Permanent Mission of Chile avails itself of this opportunity to renew to the "
        "Permanent Mission of France the assurances of its highest consideration."
    )
    result = identify(body)
    assert result.iso3 == "CHL"
    assert candidates(result) == {"CHL"}


def test_a_permanent_representative_counts_as_the_mission() -> None:
    body = "Ambassador\nRepresentante Permanente de España\nante la Oficina de las Naciones Unidas"
    result = identify(body, sender="rep.ginebra@maec.es")
    assert result.iso3 == "ESP"
    assert rules(result) == {"sender-domain", "mission-name"}


def test_the_holy_see_observer_mission_on_a_shared_host() -> None:
    body = (
        "The Permanent Observer Mission of the Holy See to the United Nations Office at Geneva "
        "presents its compliments to the Implementation Support Unit."
    )
    listed = identify(body, sender="mission.holy-see@ties.itu.int")
    assert listed.iso3 == "VAT"
    assert rules(listed) == {"sender-address", "note-verbale-opening"}
    other = identify("Attached.", sender="another.mission@ties.itu.int")
    assert (other.iso3, other.candidates) == (None, ())


def test_an_attached_note_verbale_counts_a_little_less_than_the_body() -> None:
    note = (
        "PERMANENT MISSION OF IRELAND\n\nThe Permanent Mission of Ireland to the United "
        "Nations presents its compliments to the Implementation Support Unit …"
    )
    result = identify("Please find attached a note verbale.", attachments=[note])
    assert result.iso3 == "IRL"
    assert result.confidence == pytest.approx(0.75)
    assert rules(result) == {"attachment-note-verbale-opening"}
    weak = identify("See attached.", attachments=["Permanent Mission of Ireland\nGeneva"])
    assert (weak.iso3, rules(weak)) == (None, {"attachment-mission-name"})


# --- Article 7 cover, delegation heading -------------------------------------------------------


def test_the_article_7_cover_names_the_state_party() -> None:
    cover = (
        "CONVENTION ON CLUSTER MUNITIONS\nARTICLE 7 REPORT - COVER PAGE\n"
        "State Party: Iceland\nReporting period: 1 January 2016 to 31 December 2016\n"
    )
    alone = identify("Please find attached our report.", attachments=[cover])
    assert alone.iso3 is None
    assert rules(alone, "ISL") == {"state-party-field"}
    with_sender = identify(
        "Please find attached our report.", sender="geneva@utn.is", attachments=[cover]
    )
    assert with_sender.iso3 == "ISL"
    assert rules(with_sender) == {"sender-domain", "state-party-field"}


def test_the_french_and_spanish_covers_count_too() -> None:
    fr = identify(
        "Rapport ci-joint.",
        sender="mission@diplomatie.gouv.sn",
        attachments=["Nom de l'État partie\u00a0: Sénégal\nPériode couverte : 2016"],
    )
    assert fr.iso3 == "SEN"
    assert "state-party-field" in rules(fr, "SEN")
    es = identify(
        "Adjunto el informe.",
        sender="onuginebra@rree.gob.pe",
        attachments=["Estado Parte:\nPerú\nPeríodo: enero a diciembre de 2016"],
    )
    assert es.iso3 == "PER"
    assert "state-party-field" in rules(es, "PER")


def test_a_delegation_heading_counts() -> None:
    en = identify(
        "Attached.",
        sender="x@dfa.ie",
        attachments=["Delegation of Ireland to the Seventh Meeting of States Parties"],
    )
    assert en.iso3 == "IRL"
    assert rules(en) == {"sender-domain", "delegation-heading"}
    fr = identify("Délégation de la Côte d'Ivoire\n\nChef de délégation : S.E. M. …")
    assert fr.iso3 is None
    assert rules(fr, "CIV") == {"delegation-heading"}
    es = identify("Lista de la Delegación de México a la Séptima Reunión", sender="x@sre.gob.mx")
    assert es.iso3 == "MEX"
    assert "delegation-heading" in rules(es, "MEX")


def test_a_delegation_named_in_running_text_is_not_a_heading() -> None:
    body = (
        "Please find attached the list of delegates. We thank the delegation of Germany for "
        "its presidency of the Seventh Meeting."
    )
    result = identify(body, sender="x@dfa.ie")
    assert result.iso3 == "IRL"
    assert candidates(result) == {"IRL"}


# --- traps ------------------------------------------------------------------------------------


def test_a_bare_country_name_in_a_signature_does_not_count() -> None:
    result = identify(
        "Please find attached the list of delegates." + SIGNATURE,
        sender="dfra.geneve@diplomatie.gouv.fr",
    )
    assert result.iso3 == "FRA"
    assert "CHE" not in candidates(result)
    nothing = identify("Dear colleagues, see you at the Palais." + UN_SIGNATURE)
    assert (nothing.iso3, nothing.candidates, nothing.evidence) == (None, (), ())
    assert nothing.reason.startswith("no evidence")


def test_a_sender_domain_of_one_state_and_a_mission_of_another_go_to_review() -> None:
    result = identify(
        "The Permanent Mission of Chile presents its compliments to the ISU.",
        sender="someone@diplomatie.gouv.fr",
    )
    assert result.iso3 is None
    assert candidates(result) == {"FRA", "CHL"}
    assert rules(result, "FRA") == {"sender-domain"}
    assert rules(result, "CHL") == {"note-verbale-opening"}
    assert result.reason.startswith("two strong candidates:")
    assert "CHL 0.85" in result.reason and "FRA 0.80" in result.reason


@pytest.mark.parametrize(
    "body",
    [
        "The Permanent Mission of Austria, on behalf of the following States: Austria, Chile, "
        "Ireland, Mexico and New Zealand, presents its compliments to the ISU.",
        "Joint statement delivered on behalf of a group of States at the 7MSP.",
        "La Mission permanente de l'Autriche présente ses compliments et transmet la déclaration "
        "faite au nom des États suivants : Autriche, Chili, Irlande et Mexique.",
        "Declaración conjunta en nombre de un grupo de Estados Partes.",
        "Statement on behalf of Austria, Costa Rica, Ireland and Mexico",
    ],
)
def test_a_group_statement_on_behalf_of_many_states_goes_to_review(body: str) -> None:
    result = identify(body, sender="genf-ov@bmeia.gv.at")
    assert result.iso3 is None
    assert "group-statement" in rules(result)
    assert result.reason.startswith("group statement on behalf of several States")


def test_thanking_states_on_behalf_of_ones_delegation_is_not_a_group() -> None:
    body = (
        "The Permanent Mission of Chile presents its compliments to the ISU.\n\n"
        "On behalf of my delegation, I would like to thank Germany and Switzerland for their "
        "leadership."
    )
    result = identify(body)
    assert result.iso3 == "CHL"
    assert "group-statement" not in rules(result)


def test_on_behalf_of_ones_own_government_is_not_a_group() -> None:
    en = identify(
        "On behalf of the Government of Chile, the Permanent Mission has the honour to "
        "submit the following report.",
        sender="chile.ginebra@minrel.gob.cl",
    )
    assert en.iso3 == "CHL"
    es = identify(
        "En nombre del Gobierno de los Estados Unidos Mexicanos, la Misión Permanente de "
        "México saluda atentamente a la Unidad de Apoyo.",
        sender="x@sre.gob.mx",
    )
    assert es.iso3 == "MEX"
    assert "group-statement" not in rules(es)


QUOTED_REPLIES = [
    # '>' quoting
    "Noted with thanks.\n\n> The Permanent Mission of France presents its compliments to the ISU.\n"
    "> State Party: France\n",
    # Outlook
    "Noted with thanks.\n\n-----Original Message-----\nFrom: Permanent Mission of France\n"
    "Sent: Tuesday, 5 September 2017 10:12\nTo: CCM\n\n"
    "The Permanent Mission of France presents its compliments to the ISU.\n",
    # Outlook header block without a separator line, French
    "Bien reçu, merci.\n\nDe : Mission permanente de la France\nEnvoyé : mardi 5 septembre 2017\n"
    "À : CCM\nObjet : Délégation\n\nLa Mission permanente de la France présente ses compliments.\n",
    # Gmail, French
    "Merci.\n\nLe mar. 5 sept. 2017 à 10:12, Mission permanente de la France <x@y.fr> a écrit :\n"
    "La Mission permanente de la France présente ses compliments à l'Unité d'appui.\n",
    # Gmail, Spanish, wrapped over two lines
    "Gracias.\n\nEl mar., 5 sept. 2017 a las 10:12, Misión Permanente de Francia\n(<x@y.fr>) "
    "escribió:\nLa Misión Permanente de Francia saluda atentamente a la Unidad de Apoyo.\n",
    # Gmail, English
    "Thanks.\n\nOn Tue, 5 Sep 2017 at 10:12, Permanent Mission of France <x@y.fr> wrote:\n"
    "The Permanent Mission of France presents its compliments to the ISU.\n",
]


@pytest.mark.parametrize("body", QUOTED_REPLIES)
def test_quoted_and_forwarded_parts_are_ignored(body: str) -> None:
    result = identify(body)
    assert (result.iso3, result.candidates) == (None, ())
    assert "FRA" not in candidates(result)


def test_our_own_acknowledgement_quoted_back_is_ignored() -> None:
    body = (
        "Thank you very much.\n\nBest regards,\nChilean delegation\n\n"
        "On Tue, 5 Sep 2017 at 10:12, CCM Implementation Support Unit <ccm@unog.ch> wrote:\n"
        "> Dear Permanent Mission of France,\n"
        "> We acknowledge receipt of the details of the delegation of France to the 7MSP.\n"
        "> State Party: France\n> " + UN_SIGNATURE.replace("\n", "\n> ")
    )
    result = identify(body, sender="chile.ginebra@minrel.gob.cl")
    assert result.iso3 == "CHL"
    assert candidates(result) == {"CHL"}
    assert rules(result) == {"sender-address"}


def test_own_text_keeps_the_top_and_drops_the_quotes() -> None:
    assert own_text("Top\n> quoted\nmore\n").strip() == "Top\nmore"
    assert own_text("Top\n-----Original Message-----\nold").strip() == "Top"


def test_a_reply_subject_is_not_read_as_the_sender_speaking() -> None:
    reply = identify("Noted.", subject="RE: Permanent Mission of France - 7MSP delegation")
    assert reply.candidates == ()
    fresh = identify(
        "Attached.", subject="Delegation of Senegal to the 7MSP", sender="x@diplomatie.gouv.sn"
    )
    assert fresh.iso3 == "SEN"
    assert "delegation-heading" in rules(fresh, "SEN")


# --- the result ----------------------------------------------------------------------------------


def test_a_higher_threshold_sends_a_single_opening_to_review() -> None:
    body = "The Permanent Mission of Austria presents its compliments to the ISU."
    assert identify(body, threshold=0.9).iso3 is None
    assert identify(body, threshold=0.85).iso3 == "AUT"


def test_the_result_is_consistent() -> None:
    result = identify(
        "La Misión Permanente de Chile saluda atentamente a la Unidad de Apoyo.",
        sender="chile.ginebra@minrel.gob.cl",
        attachments=["Estado Parte: Chile", "Delegación de Chile"],
    )
    assert result.iso3 == "CHL"
    assert rules(result) == {
        "sender-address",
        "note-verbale-opening",
        "state-party-field",
        "delegation-heading",
    }
    assert all(e.target == "CHL" for e in result.evidence)
    assert result.candidates == (("CHL", result.confidence),)
    assert 0.99 < result.confidence <= 1.0
    assert "\n" not in result.reason
