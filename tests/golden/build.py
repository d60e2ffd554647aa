"""The golden corpus: mails as missions, capitals, robots and others send them, each with
what a careful clerk of the secretariat would decide.

``cases()`` builds every mail fresh (see ``tests/golden/mail.py``) and returns
:class:`Case` records. An expectation is the clerk's, never the code's: where today's code
decides otherwise the case says ``xfail=True`` and why in one line, and
``tests/test_golden.py`` runs it as a strict xfail, so a fix shows up as a pass to un-mark.

``kind`` is the issue's: ``delegation``, ``article7``, ``other``, or for a robot's mail
``auto_reply``, ``bounce``, ``list``, ``spam``. A mail that submits both is
``article7+delegation`` (the kinds, sorted, joined by "+"). ``state`` is the ISO3 the mail is
filed under, or None when it must not be filed under any State (review, or not a
submission). ``ack``: an acknowledgement goes out. ``review``: it waits for a human.

``scripts/accuracy`` scores the service on these cases; ``tests/test_golden.py`` asserts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tests.golden.mail import (
    ARTICLE7,
    DELEGATION,
    PENDING_FORMATS,
    article7_sheets,
    delegation_rows,
    docx,
    message,
    note,
    odt,
    pdf,
    raw_lines,
    rtf,
    scan,
    xlsx,
    zipped,
)

SUBMISSIONS = frozenset({"delegation", "article7", "article7+delegation"})
AUTOMATIC = frozenset({"auto_reply", "bounce", "list", "spam"})


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    raw: bytes
    state: str | None  # ISO3 the clerk files it under; None: under no State
    kind: str
    ack: bool
    review: bool
    category: str = ""
    lang: str = "en"
    xfail: bool = False
    reason: str = ""  # why today's code decides otherwise (xfail cases only)
    # Our mail server(s) whose Authentication-Results count (analyse's ``authserv_ids``).
    authserv: tuple[str, ...] = ()


_Builder = Callable[[], Iterator[Case]]
_GROUPS: list[_Builder] = []


def _group(fn: _Builder) -> _Builder:
    _GROUPS.append(fn)
    return fn


def case(
    name: str,
    raw: bytes,
    state: str | None,
    kind: str,
    *,
    category: str,
    lang: str = "en",
    ack: bool | None = None,
    review: bool = False,
    xfail: str = "",
    authserv: tuple[str, ...] = (),
) -> Case:
    """A case; ``ack`` defaults to what the design says: a submission filed under a State."""
    if ack is None:
        ack = state is not None and kind in SUBMISSIONS and not review
    return Case(name, raw, state, kind, ack, review, category, lang, bool(xfail), xfail, authserv)


def cases() -> list[Case]:
    """Every golden case, built now. Names are unique."""
    built = [c for group in _GROUPS for c in group()]
    names = [c.name for c in built]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate case names: {sorted(duplicates)}")
    return built


# Delegates: invented names, the titles missions use.
_PEOPLE_EN = [
    ("H.E. Mr. Daniel Okafor, Ambassador, Permanent Representative", "Head of Delegation"),
    ("Ms. Laura Brennan, Counsellor", "Alternate Head of Delegation"),
    ("Mr. Tomas Lindqvist, First Secretary", "Adviser"),
]
_PEOPLE_FR = [
    ("S.E. M. Amadou Diallo, Ambassadeur, Représentant permanent", "Chef de délégation"),
    ("Mme Claire Martin, Conseillère", "Chef adjointe de délégation"),
    ("M. Luc Bernard, Premier Secrétaire", "Conseiller"),
]
_PEOPLE_ES = [
    ("Embajadora María Fernanda Ríos, Representante Permanente", "Jefa de delegación"),
    ("Sr. Andrés Quiroga, Ministro Consejero", "Jefe adjunto de delegación"),
    ("Sra. Lucía Paredes, Primera Secretaria", "Asesora"),
]
_PEOPLE = {"en": _PEOPLE_EN, "fr": _PEOPLE_FR, "es": _PEOPLE_ES}
_LIST_TITLE = {
    "en": "Seventh Meeting of States Parties to the Convention on Cluster Munitions "
    "(Geneva, 4-6 September 2017) - Delegation of {state}",
    "fr": "Septième Assemblée des États parties à la Convention sur les armes à sous-munitions "
    "(Genève, 4-6 septembre 2017) - Délégation {of_state}",
    "es": "Séptima Reunión de los Estados Partes en la Convención sobre Municiones en Racimo "
    "(Ginebra, 4-6 de septiembre de 2017) - Delegación {of_state}",
}


def _delegation_pdf(lang: str, state: str, of_state: str, name: str) -> tuple[str, bytes, str]:
    title = _LIST_TITLE[lang].format(state=state, of_state=of_state)
    return pdf(name, title, delegation_rows(lang, _PEOPLE[lang]))


def _nv(lang: str, mission: str, what: str, state: str, of_state: str = "") -> str:
    return note(lang, mission, what.format(state=state, of_state=of_state or state))


# =============================================================================
# Delegations from mission addresses in the directory
# =============================================================================


@_group
def delegations_from_the_directory() -> Iterator[Case]:
    cat = "delegation"
    yield case(
        "fra-delegation-pdf-fr",
        message(
            "Mission permanente de la France <dfra.geneve@diplomatie.gouv.fr>",
            "7MSP - Composition de la délégation française",
            "Note verbale n° 2017-0412\n\n"
            + _nv("fr", "Mission permanente de la France", DELEGATION["fr"], "France", "française"),
            files=[_delegation_pdf("fr", "France", "de la France", "Délégation France 7MSP.pdf")],
        ),
        "FRA",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "mex-delegation-docx-es",
        message(
            "Misión Permanente de México <mision.ginebra@sre.gob.mx>",
            "Composición de la delegación de México - Séptima Reunión de los Estados Partes",
            "OGE-01234\n\n"
            + _nv("es", "Misión Permanente de México", DELEGATION["es"], "México", "de México"),
            files=[
                docx(
                    "Delegación México 7REP.docx",
                    "Delegación de México",
                    [],
                    [
                        ("Nombre", "Cargo", "Función"),
                        ("Embajador Jorge Ruiz", "Representante Permanente", "Jefe de delegación"),
                        ("Ministra Ana Sánchez", "Representante Permanente Alterna", "Suplente"),
                        ("Pablo Ortega", "Consejero", "Asesor"),
                    ],
                )
            ],
        ),
        "MEX",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "che-delegation-body-fr",
        message(
            "Mission permanente de la Suisse <gen.vertretung@eda.admin.ch>",
            "Septième Assemblée des États parties - délégation suisse",
            _nv("fr", "Mission permanente de la Suisse", DELEGATION["fr"], "Suisse", "suisse")
            + "\nChef de délégation : S.E. Mme Nathalie Berger, Ambassadrice\n"
            "Chef adjoint de délégation : M. Reto Frei\n"
            "Conseillère : Mme Anna Keller, Département fédéral des affaires étrangères\n\n"
            "Mission permanente de la Suisse auprès de l'Office des Nations Unies\n"
            "Rue de Varembé 9-11, 1211 Genève 20\n",
        ),
        "CHE",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "deu-delegation-docx-en",
        message(
            "Permanent Mission of Germany <info@genf.diplo.de>",
            "7MSP CCM: Delegation of Germany",
            "Note No. 312/2017\n\n"
            + _nv(
                "en",
                "Permanent Mission of the Federal Republic of Germany",
                DELEGATION["en"],
                "Germany",
            ),
            files=[
                docx(
                    "7MSP_Delegation_Germany.docx",
                    "Delegation of Germany",
                    ["Seventh Meeting of States Parties, Geneva, 4-6 September 2017"],
                    [
                        ("Name", "Function"),
                        ("Ambassador Michael Weber", "Head of Delegation"),
                        ("Ms. Katrin Vogel", "Deputy Head of Delegation"),
                        ("Mr. Jonas Richter", "Adviser, Federal Foreign Office"),
                    ],
                )
            ],
        ),
        "DEU",
        "delegation",
        category=cat,
    )
    yield case(
        "chl-delegation-pdf-es",
        message(
            "Mision Chile Ginebra <chile.ginebra@minrel.gob.cl>",
            "Delegación de Chile a la 7ª Reunión de los Estados Partes (CCM)",
            _nv("es", "Misión Permanente de Chile", DELEGATION["es"], "Chile", "de Chile"),
            files=[_delegation_pdf("es", "Chile", "de Chile", "NV 145-2017 delegacion Chile.pdf")],
        ),
        "CHL",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "civ-delegation-pdf-fr",
        message(
            "Mission Côte d'Ivoire <mission.geneve@diplomatie.gouv.ci>",
            "Composition de la délégation ivoirienne - 7e Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République de Côte d'Ivoire",
                DELEGATION["fr"],
                "Côte d'Ivoire",
                "ivoirienne",
            ),
            files=[
                _delegation_pdf(
                    "fr", "Côte d'Ivoire", "de la Côte d'Ivoire", "Delegation_CIV_7MSP.pdf"
                )
            ],
        ),
        "CIV",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "isl-delegation-en",
        message(
            "Permanent Mission of Iceland <geneva@utn.is>",
            "Iceland - delegation to the 7MSP",
            _nv("en", "Permanent Mission of Iceland", DELEGATION["en"], "Iceland")
            + "\nThe delegation of Iceland will also attend the side event co-hosted with "
            "Ireland on 5 September.\n",
            files=[_delegation_pdf("en", "Iceland", "", "Iceland 7MSP delegation.pdf")],
        ),
        "ISL",
        "delegation",
        category=cat,
    )
    yield case(
        "jpn-delegation-html-en",
        message(
            "Permanent Mission of Japan <mission@gv.mofa.go.jp>",
            "Seventh Meeting of States Parties: composition of the delegation of Japan",
            _nv("en", "Permanent Mission of Japan", DELEGATION["en"], "Japan")
            + "\nHead of Delegation: H.E. Mr. Kenji Sato, Ambassador\n"
            "Alternate: Mr. Hiroshi Tanaka, Counsellor\n",
            html=True,
        ),
        "JPN",
        "delegation",
        category=cat,
    )
    yield case(
        "ner-delegation-pdf-fr",
        message(
            "Mission permanente du Niger <mission.geneve@affetrangeres.gouv.ne>",
            "Délégation du Niger - 7ème Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République du Niger",
                DELEGATION["fr"],
                "Niger",
                "nigérienne",
            ),
            files=[_delegation_pdf("fr", "Niger", "du Niger", "Delegation Niger.pdf")],
        ),
        "NER",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "nga-delegation-en",
        message(
            "Nigeria Mission Geneva <geneva@foreignaffairs.gov.ng>",
            "Nigeria: Delegation to the 7MSP of the CCM",
            _nv(
                "en",
                "Permanent Mission of the Federal Republic of Nigeria",
                DELEGATION["en"],
                "Nigeria",
            ),
            files=[_delegation_pdf("en", "Nigeria", "", "NGA delegation 7MSP.pdf")],
        ),
        "NGA",
        "delegation",
        category=cat,
    )
    yield case(
        "nzl-delegation-en",
        message(
            "NZ Mission Geneva <nzmission.geneva@mfat.govt.nz>",
            "New Zealand delegation - CCM 7MSP",
            _nv("en", "Permanent Mission of New Zealand", DELEGATION["en"], "New Zealand"),
            files=[_delegation_pdf("en", "New Zealand", "", "NZ delegation 7MSP.pdf")],
        ),
        "NZL",
        "delegation",
        category=cat,
    )
    yield case(
        "sen-delegation-fr",
        message(
            "Mission permanente du Sénégal <mission.geneve@diplomatie.gouv.sn>",
            "Délégation du Sénégal à la 7e Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République du Sénégal",
                DELEGATION["fr"],
                "Sénégal",
                "sénégalaise",
            ),
            files=[_delegation_pdf("fr", "Sénégal", "du Sénégal", "liste_delegation_senegal.pdf")],
        ),
        "SEN",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "can-delegation-en",
        message(
            "Canada Geneva / Genève <genev@international.gc.ca>",
            "Canadian delegation to the 7MSP / Délégation canadienne",
            _nv("en", "Permanent Mission of Canada", DELEGATION["en"], "Canada")
            + "\nPermanent Mission of Canada | Mission permanente du Canada\n"
            "5 avenue de l'Ariana, 1202 Geneva, Switzerland\n",
            files=[_delegation_pdf("en", "Canada", "", "Canada_7MSP_delegation.pdf")],
        ),
        "CAN",
        "delegation",
        category=cat,
    )
    yield case(
        "vat-delegation-en",
        message(
            "Holy See Mission <mission.holy-see@ties.itu.int>",
            "Delegation of the Holy See - 7MSP",
            _nv(
                "en", "Permanent Observer Mission of the Holy See", DELEGATION["en"], "the Holy See"
            ),
        ),
        "VAT",
        "delegation",
        category=cat,
    )
    yield case(
        "aut-delegation-mentions-australia-en",
        message(
            "Austrian Mission Geneva <genf-ov@bmeia.gv.at>",
            "Austria - composition of the delegation, 7MSP",
            _nv("en", "Permanent Mission of Austria", DELEGATION["en"], "Austria")
            + "\nAs in previous years, Austria will coordinate with Australia on the work of the "
            "Coordination Committee.\n",
            files=[_delegation_pdf("en", "Austria", "", "AUT_7MSP_delegation.pdf")],
        ),
        "AUT",
        "delegation",
        category=cat,
    )
    yield case(
        "per-delegation-es",
        message(
            "Misión Permanente del Perú <onuginebra@rree.gob.pe>",
            "Perú: composición de la delegación a la 7REP de la CMR",
            _nv("es", "Misión Permanente del Perú", DELEGATION["es"], "Perú", "del Perú"),
            files=[_delegation_pdf("es", "Perú", "del Perú", "Delegacion Peru 7REP.pdf")],
        ),
        "PER",
        "delegation",
        category=cat,
        lang="es",
    )


# =============================================================================
# Article 7 reports from mission addresses in the directory
# =============================================================================


@_group
def article7_from_the_directory() -> Iterator[Case]:
    cat = "article7"
    yield case(
        "aus-article7-xlsx-en",
        message(
            "Australian Permanent Mission Geneva <geneva.mission@dfat.gov.au>",
            "Australia - Convention on Cluster Munitions Article 7 transparency report 2016",
            _nv("en", "Permanent Mission of Australia", ARTICLE7["en"], "Australia"),
            files=[
                xlsx("Australia CCM Article 7 Report 2016.xlsx", article7_sheets("en", "Australia"))
            ],
        ),
        "AUS",
        "article7",
        category=cat,
    )
    yield case(
        "col-article7-xlsx-es",
        message(
            "Misión de Colombia en Ginebra <eginebra@cancilleria.gov.co>",
            "Informe de transparencia - artículo 7 - Colombia 2016",
            _nv("es", "Misión Permanente de Colombia", ARTICLE7["es"], "Colombia", "de Colombia"),
            files=[xlsx("Colombia_Informe_Art7_2016.xlsx", article7_sheets("es", "Colombia"))],
        ),
        "COL",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "esp-article7-pdf-es",
        message(
            "Representación Permanente de España <rep.ginebra@maec.es>",
            "Informe anual artículo 7 CMR - España",
            _nv("es", "Misión Permanente de España", ARTICLE7["es"], "España", "de España"),
            files=[
                pdf(
                    "Espana informe articulo 7 2016.pdf",
                    "Convención sobre Municiones en Racimo - Informe de transparencia (artículo 7)",
                    [
                        "Estado Parte: España",
                        "Período que abarca: 1 de enero de 2016 - 31 de diciembre de 2016",
                        "Formulario A: Medidas nacionales de aplicación",
                        "Formulario B: Existencias de municiones en racimo",
                        "Formulario C: Características técnicas",
                    ],
                )
            ],
        ),
        "ESP",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "irl-article7-docx-en",
        message(
            "Permanent Mission of Ireland <genevapmun@dfa.ie>",
            "Ireland: CCM Article 7 report (calendar year 2016)",
            _nv("en", "Permanent Mission of Ireland", ARTICLE7["en"], "Ireland"),
            files=[
                docx(
                    "Ireland CCM Art 7 2016.docx",
                    "Convention on Cluster Munitions - Article 7 Report",
                    [
                        "State Party: Ireland",
                        "Reporting period: 1 January 2016 to 31 December 2016",
                        "Form A: National implementation measures - Cluster Munitions and Anti-"
                        "Personnel Mines Act 2008",
                        "Form B: Stockpiled cluster munitions - none",
                        "Form E: Retention - none",
                    ],
                )
            ],
        ),
        "IRL",
        "article7",
        category=cat,
    )
    yield case(
        "nor-article7-xlsx-en",
        message(
            "Norway Mission Geneva <delgen@mfa.no>",
            "Norway - Article 7 report 2016",
            _nv("en", "Permanent Mission of Norway", ARTICLE7["en"], "Norway"),
            files=[xlsx("NOR_CCM_Art7_2016.xlsx", article7_sheets("en", "Norway"))],
        ),
        "NOR",
        "article7",
        category=cat,
    )
    yield case(
        "per-article7-pdf-es",
        message(
            "Misión Permanente del Perú <onuginebra@rree.gob.pe>",
            "Perú - Informe artículo 7 - 2016",
            _nv("es", "Misión Permanente del Perú", ARTICLE7["es"], "Perú", "del Perú"),
            files=[
                pdf(
                    "Informe Art 7 Peru 2016.pdf",
                    "Informe de conformidad con el artículo 7",
                    [
                        "Estado Parte: Perú",
                        "Formulario A ...",
                        "Formulario B ...",
                        "Formulario F ...",
                    ],
                )
            ],
        ),
        "PER",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "civ-article7-fr",
        message(
            "Mission Côte d'Ivoire <mission.geneve@diplomatie.gouv.ci>",
            "Rapport de transparence (article 7) de la Côte d'Ivoire",
            _nv(
                "fr",
                "Mission permanente de la République de Côte d'Ivoire",
                ARTICLE7["fr"],
                "Côte d'Ivoire",
                "de la Côte d'Ivoire",
            ),
            files=[xlsx("CIV rapport art7 2016.xlsx", article7_sheets("fr", "Côte d'Ivoire"))],
        ),
        "CIV",
        "article7",
        category=cat,
        lang="fr",
    )


# =============================================================================
# Free-mail senders whose note verbale says who they are (and confusable names)
# =============================================================================

_PALAIS = "\nPalais des Nations, CH-1211 Genève 10, Suisse\n"


@_group
def free_mail_with_a_note_verbale() -> Iterator[Case]:
    cat = "freemail"
    yield case(
        "sen-freemail-palais-fr",
        message(
            "Mission du Sénégal Genève <senegal.mission.geneve@gmail.com>",
            "Délégation du Sénégal à la 7e Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République du Sénégal",
                DELEGATION["fr"],
                "Sénégal",
                "sénégalaise",
            )
            + "\nMission permanente du Sénégal"
            + _PALAIS,
            files=[_delegation_pdf("fr", "Sénégal", "du Sénégal", "delegation_senegal.pdf")],
        ),
        "SEN",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "gin-freemail-fr",
        message(
            "Mission Guinée Genève <missionguinee.geneve@yahoo.fr>",
            "Composition de la délégation guinéenne - 7e AEP",
            _nv(
                "fr",
                "Mission permanente de la République de Guinée",
                DELEGATION["fr"],
                "Guinée",
                "guinéenne",
            ),
            files=[_delegation_pdf("fr", "Guinée", "de la Guinée", "delegation guinee.pdf")],
        ),
        "GIN",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "gnb-freemail-fr",
        message(
            "Missão Guiné-Bissau <guinebissau.geneve@gmail.com>",
            "Délégation de la Guinée-Bissau - septième Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République de Guinée-Bissau",
                DELEGATION["fr"],
                "Guinée-Bissau",
                "de la Guinée-Bissau",
            ),
        ),
        "GNB",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "gnq-freemail-es",
        message(
            "Mision Guinea Ecuatorial <misionge.ginebra@hotmail.es>",
            "Delegación de Guinea Ecuatorial - Séptima Reunión de los Estados Partes (observador)",
            _nv(
                "es",
                "Misión Permanente de la República de Guinea Ecuatorial",
                DELEGATION["es"],
                "Guinea Ecuatorial",
                "de Guinea Ecuatorial",
            ),
        ),
        "GNQ",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "png-freemail-en",
        message(
            "PNG Mission <png.mission.un@gmail.com>",
            "Papua New Guinea - delegation to 7MSP (observer)",
            _nv(
                "en", "Permanent Mission of Papua New Guinea", DELEGATION["en"], "Papua New Guinea"
            ),
        ),
        "PNG",
        "delegation",
        category=cat,
    )
    yield case(
        "dma-freemail-en",
        message(
            "Dominica Mission <dominica.mission@outlook.com>",
            "Dominica: delegation to the Seventh Meeting of States Parties",
            _nv(
                "en",
                "Permanent Mission of the Commonwealth of Dominica",
                DELEGATION["en"],
                "Dominica",
            ),
        ),
        "DMA",
        "delegation",
        category=cat,
    )
    yield case(
        "dom-freemail-article7-es",
        message(
            "Misión RD Ginebra <misionrd.ginebra@gmail.com>",
            "República Dominicana - Informe artículo 7 - 2016",
            _nv(
                "es",
                "Misión Permanente de la República Dominicana",
                ARTICLE7["es"],
                "República Dominicana",
                "de la República Dominicana",
            ),
            files=[xlsx("RD informe art 7.xlsx", article7_sheets("es", "República Dominicana"))],
        ),
        "DOM",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "ssd-freemail-en",
        message(
            "South Sudan Mission Geneva <southsudan.geneva@gmail.com>",
            "Republic of South Sudan - 7MSP delegation (observer)",
            _nv(
                "en",
                "Permanent Mission of the Republic of South Sudan",
                DELEGATION["en"],
                "South Sudan",
            ),
        ),
        "SSD",
        "delegation",
        category=cat,
    )
    yield case(
        "sdn-freemail-en",
        message(
            "Sudan Mission <sudanmission.gva@hotmail.com>",
            "The Sudan - delegation to the 7MSP (observer)",
            _nv(
                "en",
                "Permanent Mission of the Republic of the Sudan",
                DELEGATION["en"],
                "the Sudan",
            ),
        ),
        "SDN",
        "delegation",
        category=cat,
    )
    yield case(
        "cog-freemail-article7-fr",
        message(
            "Mission Congo Genève <mission.congo.geneve@yahoo.fr>",
            "Rapport article 7 - République du Congo",
            _nv(
                "fr",
                "Mission permanente de la République du Congo",
                ARTICLE7["fr"],
                "Congo",
                "de la République du Congo",
            ),
        ),
        "COG",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "cod-freemail-fr",
        message(
            "Mission RDC Genève <rdc.mission.geneve@gmail.com>",
            "RDC - composition de la délégation à la 7e Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République démocratique du Congo",
                DELEGATION["fr"],
                "RDC",
                "de la République démocratique du Congo",
            ),
        ),
        "COD",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "kor-freemail-en",
        message(
            "ROK Mission Geneva <rokmission.geneva@naver.com>",
            "Republic of Korea - delegation to 7MSP (observer)",
            _nv(
                "en",
                "Permanent Mission of the Republic of Korea",
                DELEGATION["en"],
                "the Republic of Korea",
            ),
        ),
        "KOR",
        "delegation",
        category=cat,
    )
    yield case(
        "prk-freemail-en",
        message(
            "DPRK Mission <dprk.mission.geneva@gmail.com>",
            "DPR Korea - delegation (observer)",
            _nv(
                "en",
                "Permanent Mission of the Democratic People's Republic of Korea",
                DELEGATION["en"],
                "the Democratic People's Republic of Korea",
            ),
        ),
        "PRK",
        "delegation",
        category=cat,
    )
    yield case(
        "mli-freemail-article7-fr",
        message(
            "Mission du Mali <missionmali.geneve@orange.fr>",
            "Mali - rapport au titre de l'article 7",
            _nv(
                "fr",
                "Mission permanente de la République du Mali",
                ARTICLE7["fr"],
                "Mali",
                "du Mali",
            )
            + "\nMission permanente du Mali"
            + _PALAIS,
        ),
        "MLI",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "mwi-freemail-article7-en",
        message(
            "Malawi Mission Geneva <malawimission.gva@yahoo.com>",
            "Malawi - Article 7 transparency report",
            _nv("en", "Permanent Mission of the Republic of Malawi", ARTICLE7["en"], "Malawi"),
            files=[xlsx("Malawi Art7 2016.xlsx", article7_sheets("en", "Malawi", "ABCDEF"))],
        ),
        "MWI",
        "article7",
        category=cat,
    )
    yield case(
        "lao-freemail-article7-en",
        message(
            "Lao Mission Geneva <laomission.geneva@gmail.com>",
            "Lao PDR - CCM Article 7 report 2016",
            _nv(
                "en",
                "Permanent Mission of the Lao People's Democratic Republic",
                ARTICLE7["en"],
                "the Lao PDR",
            ),
            files=[xlsx("Lao PDR Art 7 2016.xlsx", article7_sheets("en", "Lao PDR"))],
        ),
        "LAO",
        "article7",
        category=cat,
    )


# =============================================================================
# Missions whose addresses are not in the directory
# =============================================================================


@_group
def senders_not_in_the_directory() -> Iterator[Case]:
    cat = "unlisted"
    yield case(
        "gha-article7-ties-en",
        message(
            "Permanent Mission of Ghana <ghanamission@ties.itu.int>",
            "Ghana: Article 7 Report - Convention on Cluster Munitions",
            _nv("en", "Permanent Mission of the Republic of Ghana", ARTICLE7["en"], "Ghana"),
            files=[xlsx("Ghana CCM Article 7 2016.xlsx", article7_sheets("en", "Ghana"))],
        ),
        "GHA",
        "article7",
        category=cat,
    )
    yield case(
        "bel-delegation-fr",
        message(
            "Représentation permanente de la Belgique <geneve@diplobel.fed.be>",
            "Délégation belge - 7e Assemblée des États parties CASM",
            _nv("fr", "Mission permanente de la Belgique", DELEGATION["fr"], "Belgique", "belge"),
            files=[_delegation_pdf("fr", "Belgique", "de la Belgique", "BE delegation 7MSP.pdf")],
        ),
        "BEL",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "ita-article7-en",
        message(
            "Rappresentanza Permanente d'Italia <segreteria.ginevra@esteri.it>",
            "Italy - CCM Article 7 report 2016",
            _nv("en", "Permanent Mission of Italy", ARTICLE7["en"], "Italy"),
            files=[xlsx("ITA_Art7_2016.xlsx", article7_sheets("en", "Italy"))],
        ),
        "ITA",
        "article7",
        category=cat,
    )
    yield case(
        "gbr-article7-en",
        message(
            "UK Mission Geneva <ukmis.geneva@fco.gov.uk>",
            "United Kingdom - Article 7 transparency report (2016)",
            _nv(
                "en",
                "Permanent Mission of the United Kingdom of Great Britain and Northern Ireland",
                ARTICLE7["en"],
                "the United Kingdom",
            ),
            files=[xlsx("UK CCM Art 7 report 2016.xlsx", article7_sheets("en", "United Kingdom"))],
        ),
        "GBR",
        "article7",
        category=cat,
    )
    yield case(
        "lbn-note-only-in-pdf-en",
        message(
            "Lebanon Mission <lebanonmission@ties.itu.int>",
            "Note verbale",
            "Dear Sir or Madam,\n\nPlease find attached our note verbale and its annex.\n\n"
            "Best regards,\nChancery\n",
            files=[
                pdf(
                    "NV-2017-188.pdf",
                    "Permanent Mission of Lebanon - Geneva",
                    [
                        "Ref.: 188/2017",
                        note(
                            "en",
                            "Permanent Mission of Lebanon",
                            DELEGATION["en"].format(state="Lebanon"),
                        ),
                    ],
                ),
                pdf(
                    "Annex.pdf",
                    "Delegation of Lebanon",
                    delegation_rows("en", _PEOPLE_EN),
                ),
            ],
        ),
        "LBN",
        "delegation",
        category=cat,
    )
    yield case(
        "ury-delegation-es",
        message(
            "Delegación del Uruguay <delegacion.ginebra@mrree.gub.uy>",
            "Uruguay - delegación a la 7REP",
            _nv("es", "Misión Permanente del Uruguay", DELEGATION["es"], "Uruguay", "del Uruguay"),
        ),
        "URY",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "ecu-article7-es",
        message(
            "Misión del Ecuador <mision.ginebra@cancilleria.gob.ec>",
            "Ecuador: informe de transparencia artículo 7",
            _nv("es", "Misión Permanente del Ecuador", ARTICLE7["es"], "Ecuador", "del Ecuador"),
            files=[xlsx("Ecuador informe art7 2016.xlsx", article7_sheets("es", "Ecuador"))],
        ),
        "ECU",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "mlt-delegation-en",
        message(
            "Malta Mission Geneva <maltamission.geneva@gov.mt>",
            "Malta - delegation to the CCM 7MSP",
            _nv("en", "Permanent Mission of Malta", DELEGATION["en"], "Malta"),
            files=[_delegation_pdf("en", "Malta", "", "Malta 7MSP.pdf")],
        ),
        "MLT",
        "delegation",
        category=cat,
    )
    yield case(
        "bfa-article7-fr",
        message(
            "Mission Burkina Faso <mp.burkina.geneve@diplomatie.gov.bf>",
            "Rapport national de transparence article 7 - Burkina Faso",
            _nv(
                "fr",
                "Mission permanente du Burkina Faso",
                ARTICLE7["fr"],
                "Burkina Faso",
                "du Burkina Faso",
            ),
            files=[xlsx("BF rapport art7.xlsx", article7_sheets("fr", "Burkina Faso"))],
        ),
        "BFA",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "gtm-delegation-es",
        message(
            "Misión de Guatemala <onuginebra@minex.gob.gt>",
            "Guatemala - delegación 7ª Reunión de Estados Partes",
            _nv(
                "es",
                "Misión Permanente de Guatemala",
                DELEGATION["es"],
                "Guatemala",
                "de Guatemala",
            ),
            files=[_delegation_pdf("es", "Guatemala", "de Guatemala", "Delegacion GT.pdf")],
        ),
        "GTM",
        "delegation",
        category=cat,
        lang="es",
    )


# =============================================================================
# A capital writing for its mission
# =============================================================================


@_group
def capitals() -> Iterator[Case]:
    cat = "capital"
    yield case(
        "fra-capital-article7-fr",
        message(
            "Sous-direction du désarmement <desarmement.asm@diplomatie.gouv.fr>",
            "Rapport de la France au titre de l'article 7 - année 2016",
            "Madame, Monsieur,\n\nVeuillez trouver ci-joint le rapport de la France au titre "
            "de l'article 7 de la Convention sur les armes à sous-munitions pour l'année 2016. "
            "Ce rapport vous est transmis directement par l'administration centrale, en lien "
            "avec notre Représentation permanente à Genève.\n\nBien cordialement,\n\n"
            "Direction des affaires stratégiques, de sécurité et du désarmement\n"
            "Ministère de l'Europe et des Affaires étrangères\n37, quai d'Orsay - 75007 Paris\n",
            files=[
                pdf(
                    "Rapport article 7 France 2016.pdf",
                    "Convention sur les armes à sous-munitions - Rapport au titre de l'article 7",
                    [
                        "État partie : France",
                        "Période couverte : 1er janvier - 31 décembre 2016",
                        "Formulaire A : mesures nationales de mise en oeuvre",
                        "Formulaire B : stocks",
                        "Formulaire C : caractéristiques techniques",
                    ],
                )
            ],
        ),
        "FRA",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "che-capital-article7-en",
        message(
            "Arms Control Section FDFA <sicherheitspolitik@eda.admin.ch>",
            "Switzerland - CCM Article 7 report for 2016",
            "Dear colleagues,\n\nOn behalf of the Permanent Mission of Switzerland in Geneva, "
            "we are pleased to submit the Swiss transparency report under Article 7 of the "
            "Convention on Cluster Munitions for the year 2016.\n\nKind regards,\n\n"
            "Federal Department of Foreign Affairs FDFA\nInternational Security Division\n"
            "Bundesgasse 28, 3003 Bern\n",
            files=[xlsx("CH_CCM_Art7_2016.xlsx", article7_sheets("en", "Switzerland"))],
        ),
        "CHE",
        "article7",
        category=cat,
    )
    yield case(
        "mex-capital-delegation-es",
        message(
            "Dirección General para la ONU <dgonu@sre.gob.mx>",
            "Composición de la delegación de México - 7REP CMR",
            "Estimada secretaría:\n\nEn nombre de la Misión Permanente de México en Ginebra, "
            "remito la composición de la delegación mexicana que participará en la Séptima "
            "Reunión de los Estados Partes.\n\nJefe de delegación: Embajador Jorge Ruiz\n"
            "Suplente: Ministra Ana Sánchez\n\nSaludos cordiales,\n"
            "Secretaría de Relaciones Exteriores, Ciudad de México\n",
        ),
        "MEX",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "nor-capital-article7-en",
        message(
            "Section for Humanitarian Disarmament <disarmament.section@mfa.no>",
            "Norway's Article 7 report 2016",
            "Dear Secretariat,\n\nPlease find attached Norway's annual Article 7 report, "
            "submitted from Oslo on behalf of our Permanent Mission in Geneva.\n\n"
            "Best regards,\nNorwegian Ministry of Foreign Affairs, Oslo\n",
            files=[xlsx("Norway Art 7 2016.xlsx", article7_sheets("en", "Norway"))],
        ),
        "NOR",
        "article7",
        category=cat,
    )
    yield case(
        "aus-capital-delegation-en",
        message(
            "Arms Control Branch <arms.control@dfat.gov.au>",
            "7MSP - Australian delegation",
            "Dear Secretariat,\n\nOn behalf of the Australian Permanent Mission in Geneva, "
            "please find below the composition of the Australian delegation to the Seventh "
            "Meeting of States Parties.\n\nHead of delegation: Ms. Sarah Mitchell, Ambassador "
            "for Arms Control\nAdviser: Mr. James Cook, DFAT Canberra\n\nRegards,\n"
            "Department of Foreign Affairs and Trade, Canberra\n",
        ),
        "AUS",
        "delegation",
        category=cat,
    )
    yield case(
        "gha-capital-unlisted-en",
        message(
            "Arms Control Desk <armscontrol@mfa.gov.gh>",
            "Ghana - Article 7 transparency report 2016",
            "Dear Sir/Madam,\n\nPlease find attached Ghana's Article 7 report for 2016. A copy "
            "has also been sent to the Permanent Mission of Ghana in Geneva.\n\n"
            "Ministry of Foreign Affairs and Regional Integration, Accra\n",
            files=[xlsx("Ghana Art 7 2016.xlsx", article7_sheets("en", "Ghana"))],
        ),
        "GHA",
        "article7",
        category=cat,
    )


# =============================================================================
# Traps
# =============================================================================

_ACK_FR = (
    "Le Secrétariat de la Convention sur les armes à sous-munitions accuse réception de la "
    "communication suivante.\n\n"
    "Référence :       CCM-2017-00012\n"
    "État :            Côte d'Ivoire\n"
    "Communication :   Composition de la délégation\n"
    "Reçue le :        2017-08-09 11:02 (heure de Genève ; 2017-08-09 09:02 UTC)\n"
    "Votre message :   Composition de la délégation ivoirienne - 7e Assemblée des États parties"
    "\n\nMerci de rappeler la référence CCM-2017-00012 dans toute correspondance relative à "
    "cette communication.\n\nSecrétariat de la Convention sur les armes à sous-munitions\n"
    "ccm@unog.ch\n"
)
_ACK_EN = (
    "The secretariat of the Convention on Cluster Munitions acknowledges receipt of the "
    "following communication.\n\n"
    "Reference:      CCM-2017-00031\n"
    "State:          Ghana\n"
    "Communication:  Details of delegation\n"
    "Received:       2017-08-11 15:40 (Geneva time; 2017-08-11 13:40 UTC)\n\n"
    "Please quote the reference CCM-2017-00031 in any correspondence about this "
    "communication.\n\nSecretariat of the Convention on Cluster Munitions\nccm@unog.ch\n"
)


@_group
def traps() -> Iterator[Case]:
    cat = "trap"
    yield case(
        "trap-quoted-reply-names-chile-es",
        message(
            "Misión Permanente del Perú <onuginebra@rree.gob.pe>",
            "RE: 7REP - delegaciones",
            "Estimados colegas:\n\nAdjuntamos la lista corregida de nuestra delegación a la "
            "Séptima Reunión de los Estados Partes.\n\nAtentamente,\nMisión Permanente del Perú"
            "\n\n"
            "De: Misión Permanente de Chile [mailto:chile.ginebra@minrel.gob.cl]\n"
            "Enviado el: miércoles, 9 de agosto de 2017 16:12\n"
            "Para: onuginebra@rree.gob.pe\nAsunto: 7REP - delegaciones\n\n"
            "La Misión Permanente de Chile saluda atentamente a la Misión Permanente del Perú y "
            "tiene el honor de compartir la lista de la delegación de Chile.\n",
            files=[_delegation_pdf("es", "Perú", "del Perú", "Delegacion Peru corregida.pdf")],
        ),
        "PER",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "trap-our-ack-quoted-back-fr",
        message(
            "Mission Côte d'Ivoire <mission.geneve@diplomatie.gouv.ci>",
            "RE: Accusé de réception CCM-2017-00012 : Composition de la délégation — Côte d'Ivoire",
            "Bien reçu, merci beaucoup.\n\nLa Mission permanente de Côte d'Ivoire\n\n"
            "-----Message d'origine-----\n"
            "De : CCM Secretariat [mailto:ccm@unog.ch]\n"
            "Envoyé : mercredi 9 août 2017 11:05\n"
            "À : mission.geneve@diplomatie.gouv.ci\n"
            "Objet : Accusé de réception CCM-2017-00012 : Composition de la délégation — Côte "
            "d'Ivoire\n\n" + _ACK_FR,
        ),
        "CIV",
        "other",
        category=cat,
        lang="fr",
    )
    yield case(
        "trap-our-ack-quoted-back-freemail-en",
        message(
            "Kwame Mensah <kwame.mensah1980@gmail.com>",
            "Re: Acknowledgement of receipt CCM-2017-00031: Details of delegation — Ghana",
            "Thank you very much!\n\nKwame\n\n"
            "On Fri, 11 Aug 2017 at 15:41, CCM Secretariat <ccm@unog.ch> wrote:\n"
            + "".join(f"> {line}\n" for line in _ACK_EN.splitlines()),
        ),
        None,
        "other",
        category=cat,
    )
    yield case(
        "trap-niger-reply-quotes-nigeria-fr",
        message(
            "Mission permanente du Niger <mission.geneve@affetrangeres.gouv.ne>",
            "TR: Délégation - 7e Assemblée des États parties",
            _nv(
                "fr",
                "Mission permanente de la République du Niger",
                DELEGATION["fr"],
                "Niger",
                "nigérienne",
            )
            + "\n-----Message d'origine-----\n"
            "De : Permanent Mission of Nigeria [mailto:geneva@foreignaffairs.gov.ng]\n"
            "Envoyé : lundi 7 août 2017 10:20\n"
            "À : mission.geneve@affetrangeres.gouv.ne\n"
            "Objet : Side event on victim assistance\n\n"
            "The Permanent Mission of the Federal Republic of Nigeria presents its compliments "
            "to the Permanent Mission of the Republic of the Niger and has the honour to invite "
            "its delegation to a side event.\n",
            files=[_delegation_pdf("fr", "Niger", "du Niger", "Delegation Niger 7AEP.pdf")],
        ),
        "NER",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "trap-australia-mentions-austria-en",
        message(
            "Australian Permanent Mission Geneva <geneva.mission@dfat.gov.au>",
            "Australia - 7MSP delegation",
            _nv("en", "Permanent Mission of Australia", DELEGATION["en"], "Australia")
            + "\nAustralia and Austria will co-host a side event on 5 September.\n",
            files=[_delegation_pdf("en", "Australia", "", "Australia delegation 7MSP.pdf")],
        ),
        "AUS",
        "delegation",
        category=cat,
    )
    yield case(
        "trap-ireland-mentions-iceland-en",
        message(
            "Permanent Mission of Ireland <genevapmun@dfa.ie>",
            "Ireland - delegation to the 7MSP",
            _nv("en", "Permanent Mission of Ireland", DELEGATION["en"], "Ireland")
            + "\nThe delegation will attend the side event co-hosted with Iceland.\n",
            files=[_delegation_pdf("en", "Ireland", "", "Ireland 7MSP delegation.pdf")],
        ),
        "IRL",
        "delegation",
        category=cat,
    )
    yield case(
        "trap-note-addressed-to-presidency-es",
        message(
            "Mision Chile Ginebra <chile.ginebra@minrel.gob.cl>",
            "Nota verbal - delegación de Chile",
            "La Misión Permanente de Chile ante la Oficina de las Naciones Unidas en Ginebra "
            "saluda atentamente a la Misión Permanente de Alemania, en su calidad de Presidencia "
            "de la Séptima Reunión de los Estados Partes, y tiene el honor de remitir adjunta la "
            "composición de la delegación de Chile. Se envía copia a la secretaría.\n\n"
            "La Misión Permanente de Chile aprovecha la oportunidad para reiterar a la Misión "
            "Permanente de Alemania las seguridades de su más alta consideración.\n",
            to="Presidencia 7REP <info@genf.diplo.de>, CCM Secretariat <ccm@unog.ch>",
            files=[_delegation_pdf("es", "Chile", "de Chile", "Delegacion Chile.pdf")],
        ),
        "CHL",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "trap-presidency-forwards-lao-note-en",
        message(
            "Permanent Mission of Germany <info@genf.diplo.de>",
            "FW: Composition of the delegation of the Lao PDR",
            "Dear colleagues,\n\nFor your records, please find below the note verbale that the "
            "7MSP Presidency received from the Permanent Mission of the Lao People's Democratic "
            "Republic.\n\nBest regards,\nPresidency of the Seventh Meeting of States Parties\n\n"
            "From: Lao Mission Geneva <laomission.geneva@gmail.com>\n"
            "Sent: Thursday, August 10, 2017 9:14 AM\n"
            "To: info@genf.diplo.de\n"
            "Subject: Composition of the delegation of the Lao PDR\n\n"
            + _nv(
                "en",
                "Permanent Mission of the Lao People's Democratic Republic",
                DELEGATION["en"],
                "the Lao PDR",
            ),
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "trap-group-statement-en",
        message(
            "Austrian Mission Geneva <genf-ov@bmeia.gv.at>",
            "7MSP - joint statement, general exchange of views",
            "Dear Secretariat,\n\nPlease find below, for posting on the website, the joint "
            "statement to be delivered on behalf of Austria, Ireland, Mexico and New Zealand "
            "in the general exchange of views.\n\n"
            "Mr. President, I have the honour to speak on behalf of Austria, Ireland, Mexico and "
            "New Zealand. We welcome the progress made on universalization...\n",
        ),
        None,
        "other",
        review=True,
        category=cat,
    )
    yield case(
        "trap-group-statement-grulac-es",
        message(
            "Mision Chile Ginebra <chile.ginebra@minrel.gob.cl>",
            "Declaración del GRULAC - 7REP",
            "Estimada secretaría:\n\nAdjunto la declaración que Chile pronunciará en nombre del "
            "Grupo de Países de América Latina y el Caribe (GRULAC) en la sesión de apertura."
            "\n\nSeñor Presidente, tengo el honor de hacer uso de la palabra en nombre del Grupo "
            "de Países de América Latina y el Caribe...\n",
        ),
        None,
        "other",
        review=True,
        category=cat,
        lang="es",
    )
    yield case(
        "trap-group-statement-african-group-fr",
        message(
            "Mission permanente du Sénégal <mission.geneve@diplomatie.gouv.sn>",
            "Déclaration du Groupe africain - 7e Assemblée des États parties",
            "Madame, Monsieur,\n\nVeuillez trouver ci-dessous la déclaration que le Sénégal "
            "prononcera au nom du Groupe des États d'Afrique lors du débat général.\n\n"
            "Monsieur le Président, j'ai l'honneur de prendre la parole au nom du Groupe des "
            "États d'Afrique...\n",
        ),
        None,
        "other",
        review=True,
        category=cat,
        lang="fr",
    )
    yield case(
        "trap-cso-cmc-about-states-en",
        message(
            "Cluster Munition Coalition <info@stopclustermunitions.org>",
            "CMC priorities for the Seventh Meeting of States Parties",
            "Dear colleagues,\n\nAhead of the Seventh Meeting of States Parties, the Cluster "
            "Munition Coalition would like to share its priorities. We welcome that the "
            "Permanent Mission of Chile and the Lao People's Democratic Republic have submitted "
            "their Article 7 transparency reports on time, and we urge States Parties that have "
            "not yet reported, such as Guinea and Malawi, to do so before the meeting.\n\n"
            "Best regards,\nCluster Munition Coalition\n",
        ),
        None,
        "other",
        category=cat,
        xfail="'Article 7 transparency reports' of others reads as a report and a named mission "
        "as a weak candidate: review instead of leaving it",
    )
    yield case(
        "trap-cso-hrw-memo-en",
        message(
            "Human Rights Watch Arms Division <arms@hrw.org>",
            "Memorandum to delegates of the Seventh Meeting of States Parties",
            "Dear Secretariat,\n\nPlease find attached Human Rights Watch's memorandum to "
            "delegates attending the Seventh Meeting of States Parties. It reviews the "
            "positions of the Delegation of Brazil, the Delegation of Cuba and others on "
            "interpretive issues.\n\nRegards,\nArms Division, Human Rights Watch\n",
            files=[
                pdf(
                    "HRW memo 7MSP.pdf",
                    "Memorandum to Delegates - Convention on Cluster Munitions",
                    [
                        "Delegation of Brazil: position on transit and foreign stockpiling.",
                        "Delegation of Cuba: first Article 7 report pending.",
                    ],
                )
            ],
        ),
        None,
        "other",
        category=cat,
        xfail="'Delegation of Brazil/Cuba' headings in a CSO memo read as two delegation "
        "lists: review instead of leaving it",
    )
    yield case(
        "trap-both-kinds-nzl-en",
        message(
            "NZ Mission Geneva <nzmission.geneva@mfat.govt.nz>",
            "New Zealand - 7MSP delegation and Article 7 report",
            _nv(
                "en",
                "Permanent Mission of New Zealand",
                "transmit the composition of the delegation of New Zealand to the Seventh "
                "Meeting of States Parties, and New Zealand's annual transparency report under "
                "Article 7 for the calendar year 2016.",
                "New Zealand",
            ),
            files=[
                _delegation_pdf("en", "New Zealand", "", "NZ delegation 7MSP.pdf"),
                xlsx("NZ CCM Article 7 report 2016.xlsx", article7_sheets("en", "New Zealand")),
            ],
        ),
        "NZL",
        "article7+delegation",
        category=cat,
    )
    yield case(
        "trap-both-kinds-per-es",
        message(
            "Misión Permanente del Perú <onuginebra@rree.gob.pe>",
            "Perú: delegación a la 7REP e informe del artículo 7",
            _nv(
                "es",
                "Misión Permanente del Perú",
                "remitir la composición de la delegación del Perú a la Séptima Reunión de los "
                "Estados Partes, así como el informe de transparencia del Perú correspondiente "
                "a 2016.",
                "Perú",
            ),
            files=[
                _delegation_pdf("es", "Perú", "del Perú", "Delegacion Peru 7REP.pdf"),
                xlsx("Peru informe art 7 2016.xlsx", article7_sheets("es", "Perú")),
            ],
        ),
        "PER",
        "article7+delegation",
        category=cat,
        lang="es",
    )


@_group
def more_traps() -> Iterator[Case]:
    cat = "trap"
    yield case(
        "trap-note-names-co-coordinator-mission-es",
        message(
            "Mision Chile Ginebra <chile.ginebra@minrel.gob.cl>",
            "Chile - composición de la delegación (7REP)",
            _nv("es", "Misión Permanente de Chile", DELEGATION["es"], "Chile", "de Chile")
            + "\nDurante la Reunión, la delegación de Chile presentará, junto con la Misión "
            "Permanente de Suiza, el informe de los coordinadores sobre cooperación y "
            "asistencia.\n",
            files=[_delegation_pdf("es", "Chile", "de Chile", "Delegacion Chile 7REP.pdf")],
        ),
        "CHL",
        "delegation",
        category=cat,
        lang="es",
        xfail="a second mission named in running text is a rival (states.py RIVAL_LIMIT): "
        "review instead of CHL",
    )
    lao_note = message(
        "Lao Mission Geneva <laomission.geneva@gmail.com>",
        "Composition of the delegation of the Lao PDR",
        _nv(
            "en",
            "Permanent Mission of the Lao People's Democratic Republic",
            DELEGATION["en"],
            "the Lao PDR",
        ),
        to="info@genf.diplo.de",
    )
    yield case(
        "trap-presidency-forwards-lao-note-as-attachment-en",
        message(
            "Permanent Mission of Germany <info@genf.diplo.de>",
            "FW: Composition of the delegation of the Lao PDR",
            "Dear colleagues,\n\nFor your records, we forward the attached note verbale "
            "received by the 7MSP Presidency.\n\nBest regards,\nPresidency of the 7MSP\n",
            mails=[(lao_note, "")],
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "trap-presidency-note-transmits-lao-note-en",
        message(
            "Permanent Mission of Germany <info@genf.diplo.de>",
            "Note verbale: delegation of the Lao PDR to the 7MSP",
            "The Permanent Mission of the Federal Republic of Germany, in its capacity as "
            "Presidency of the Seventh Meeting of States Parties, presents its compliments to "
            "the secretariat of the Convention on Cluster Munitions and has the honour to "
            "transmit below the note verbale it received from the Permanent Mission of the Lao "
            "People's Democratic Republic concerning the composition of its delegation.\n\n"
            "From: Lao Mission Geneva <laomission.geneva@gmail.com>\n"
            "Sent: Thursday, August 10, 2017 9:14 AM\n"
            "To: info@genf.diplo.de\n"
            "Subject: Composition of the delegation of the Lao PDR\n\n"
            + _nv(
                "en",
                "Permanent Mission of the Lao People's Democratic Republic",
                DELEGATION["en"],
                "the Lao PDR",
            ),
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "cod-rd-congo-alias-fr",
        message(
            "Mission RDC Genève <rdc.mission.geneve@gmail.com>",
            "RD Congo - rapport article 7",
            _nv(
                "fr",
                "Mission permanente de la RD Congo",
                ARTICLE7["fr"],
                "RD Congo",
                "de la RD Congo",
            ),
        ),
        "COD",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "gnq-guinee-equatoriale-fr",
        message(
            "Mission Guinée équatoriale <mission.ge.geneve@yahoo.fr>",
            "Délégation de la Guinée équatoriale (observateur)",
            _nv(
                "fr",
                "Mission permanente de la République de Guinée équatoriale",
                DELEGATION["fr"],
                "Guinée équatoriale",
                "de la Guinée équatoriale",
            ),
        ),
        "GNQ",
        "delegation",
        category=cat,
        lang="fr",
    )
    yield case(
        "trap-korea-without-republic-en",
        message(
            "Korea Mission <korea.mission.gva@gmail.com>",
            "Delegation to the 7MSP",
            "The Permanent Mission of Korea presents its compliments to the secretariat and has "
            "the honour to transmit the composition of its delegation to the Seventh Meeting "
            "of States Parties (observer).\n",
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "trap-mission-report-flagged-as-spam-en",
        message(
            "Norway Mission Geneva <delgen@mfa.no>",
            "Norway - Article 7 report 2016",
            _nv("en", "Permanent Mission of Norway", ARTICLE7["en"], "Norway"),
            files=[xlsx("NOR_CCM_Art7_2016.xlsx", article7_sheets("en", "Norway"))],
            headers=[("X-Spam-Flag", "YES"), ("X-Spam-Status", "Yes, score=5.3 required=5.0")],
        ),
        None,
        "article7",
        review=True,
        category=cat,
    )
    yield case(
        "list-ministry-press-release-en",
        message(
            "MFA Norway press <press@mfa.no>",
            "Press release: Norway submits its Article 7 report on cluster munitions",
            "Oslo, 28 April 2017. Norway today submitted its annual transparency report under "
            "Article 7 of the Convention on Cluster Munitions.\n\nUnsubscribe: "
            "https://www.regjeringen.example/unsubscribe\n",
            headers=[
                ("List-Unsubscribe", "<https://www.regjeringen.example/unsubscribe>"),
                ("Precedence", "bulk"),
            ],
        ),
        None,
        "list",
        category="automatic",
    )


_OUR_MX = ("mx.unog.ch",)


@_group
def sender_authentication() -> Iterator[Case]:
    """What our own server found about the sender's domain (SPF, DKIM, DMARC)."""
    cat = "trap"
    body = _nv("en", "Permanent Mission of Australia", ARTICLE7["en"], "Australia")
    files = [xlsx("Australia Art 7 2016.xlsx", article7_sheets("en", "Australia"))]
    yield case(
        "auth-dmarc-pass-aus-en",
        message(
            "Australian Permanent Mission Geneva <geneva.mission@dfat.gov.au>",
            "Australia - Article 7 report 2016",
            body,
            files=files,
            headers=[
                (
                    "Authentication-Results",
                    "mx.unog.ch; spf=pass smtp.mailfrom=dfat.gov.au; dkim=pass "
                    "header.d=dfat.gov.au; dmarc=pass header.from=dfat.gov.au",
                )
            ],
        ),
        "AUS",
        "article7",
        category=cat,
        authserv=_OUR_MX,
    )
    yield case(
        "auth-spoofed-mission-address-en",
        message(
            "Australian Permanent Mission Geneva <geneva.mission@dfat.gov.au>",
            "Australia - Article 7 report 2016 (corrected)",
            body,
            files=files,
            headers=[
                (
                    "Authentication-Results",
                    "mx.unog.ch; spf=fail smtp.mailfrom=dfat.gov.au; dkim=none; "
                    "dmarc=fail header.from=dfat.gov.au",
                ),
                # A hop before ours vouching for the sender counts for nothing.
                ("Authentication-Results", "mx.attacker.example; dmarc=pass"),
            ],
        ),
        None,
        "article7",
        review=True,
        category=cat,
        authserv=_OUR_MX,
    )


# =============================================================================
# Questions and replies from missions: filed under the State, not acknowledged
# =============================================================================


@_group
def questions_and_replies() -> Iterator[Case]:
    cat = "question"
    yield case(
        "question-irl-format-en",
        message(
            "Permanent Mission of Ireland <genevapmun@dfa.ie>",
            "Question on the Article 7 reporting format",
            "Dear Secretariat,\n\nCould you please confirm whether the Article 7 report may be "
            "submitted in Excel format, or whether a signed PDF is required?\n\n"
            "Many thanks,\nPermanent Mission of Ireland\n",
        ),
        "IRL",
        "other",
        category=cat,
    )
    yield case(
        "question-civ-deadline-fr",
        message(
            "Mission Côte d'Ivoire <mission.geneve@diplomatie.gouv.ci>",
            "Question - date limite",
            "Madame, Monsieur,\n\nPourriez-vous nous indiquer la date limite pour la "
            "transmission de la composition des délégations ? Est-il possible de compléter la "
            "liste après le 18 août ?\n\nCordialement,\n"
            "Mission permanente de Côte d'Ivoire\n",
        ),
        "CIV",
        "other",
        category=cat,
        lang="fr",
    )
    yield case(
        "question-mex-badge-es",
        message(
            "Misión Permanente de México <mision.ginebra@sre.gob.mx>",
            "Consulta - acreditación adicional",
            "Estimada secretaría:\n\n¿Podrían indicarnos si es posible acreditar a un miembro "
            "adicional de la delegación después de la fecha límite? ¿Dónde se recogen los "
            "gafetes?\n\nSaludos cordiales,\nMisión Permanente de México\n",
        ),
        "MEX",
        "other",
        category=cat,
        lang="es",
    )
    yield case(
        "reply-reminder-with-report-fr",
        message(
            "Mission permanente du Sénégal <mission.geneve@diplomatie.gouv.sn>",
            "RE: Rappel : rapport de transparence au titre de l'article 7 (dû le 30 avril)",
            "Madame, Monsieur,\n\nSuite à votre rappel, nous vous transmettons ci-joint le "
            "rapport du Sénégal.\n\nCordialement,\nMission permanente du Sénégal\n\n"
            "-----Message d'origine-----\nDe : CCM Secretariat [mailto:ccm@unog.ch]\n"
            "Envoyé : mardi 18 avril 2017 09:00\nÀ : mission.geneve@diplomatie.gouv.sn\n"
            "Objet : Rappel : rapport de transparence au titre de l'article 7 (dû le 30 avril)"
            "\n\nLe rapport annuel au titre de l'article 7 est dû le 30 avril 2017.\n",
            files=[
                pdf(
                    "Rapport article 7 Sénégal 2016.pdf",
                    "Rapport au titre de l'article 7 - Sénégal",
                    ["État partie : Sénégal", "Formulaire A ...", "Formulaire B ..."],
                )
            ],
        ),
        "SEN",
        "article7",
        category=cat,
        lang="fr",
    )
    yield case(
        "reply-reminder-no-report-en",
        message(
            "Permanent Mission of Ireland <genevapmun@dfa.ie>",
            "RE: Reminder: Article 7 transparency report due 30 April",
            "Dear Secretariat,\n\nThank you for the reminder. We will submit our report next "
            "week.\n\nBest regards,\nPermanent Mission of Ireland\n\n"
            "From: CCM Secretariat [mailto:ccm@unog.ch]\nSent: 18 April 2017 09:00\n"
            "To: genevapmun@dfa.ie\n"
            "Subject: Reminder: Article 7 transparency report due 30 April\n\n"
            "The annual Article 7 transparency report is due on 30 April 2017.\n",
        ),
        "IRL",
        "other",
        category=cat,
    )
    yield case(
        "reply-thanks-es",
        message(
            "Misión Permanente de México <mision.ginebra@sre.gob.mx>",
            "RE: Acuse de recibo CCM-2017-00044: Composición de la delegación — México",
            "Muchas gracias por la confirmación.\n\nMisión Permanente de México\n\n"
            "De: CCM Secretariat <ccm@unog.ch>\nEnviado: viernes, 11 de agosto de 2017 10:03\n"
            "Para: mision.ginebra@sre.gob.mx\n"
            "Asunto: Acuse de recibo CCM-2017-00044: Composición de la delegación — México\n\n"
            "La secretaría de la Convención sobre Municiones en Racimo acusa recibo de la "
            "comunicación siguiente. Referencia: CCM-2017-00044. Estado: México.\n",
        ),
        "MEX",
        "other",
        category=cat,
        lang="es",
    )


# =============================================================================
# Attachment formats: forwarded mails, ZIP, and the readers being added (ODT, RTF, scans)
# =============================================================================


@_group
def attachment_formats() -> Iterator[Case]:
    cat = "format"
    jpn_note = message(
        "Permanent Mission of Japan <mission@gv.mofa.go.jp>",
        "Note verbale: delegation of Japan to the 7MSP",
        _nv("en", "Permanent Mission of Japan", DELEGATION["en"], "Japan"),
        files=[_delegation_pdf("en", "Japan", "", "Japan delegation.pdf")],
    )
    yield case(
        "eml-forwarded-by-mission-en",
        message(
            "Permanent Mission of Japan <mission@gv.mofa.go.jp>",
            "FW: Note verbale: delegation of Japan to the 7MSP",
            "Dear Secretariat,\n\nWe forward the note below, which was sent to a wrong "
            "address.\n\nBest regards\n",
            mails=[(jpn_note, "Note verbale.eml")],
        ),
        "JPN",
        "delegation",
        category=cat,
    )
    ury_note = message(
        "Misión Permanente del Uruguay <delegacion.ginebra@mrree.gub.uy>",
        "Nota verbal - delegación del Uruguay",
        _nv("es", "Misión Permanente del Uruguay", DELEGATION["es"], "Uruguay", "del Uruguay"),
    )
    yield case(
        "eml-forwarded-by-diplomat-freemail-es",
        message(
            "Martín Pereira <martin.pereira.uy@gmail.com>",
            "Fwd: Nota verbal - delegación del Uruguay",
            "Les reenvío la nota verbal de la Misión.\n\nSaludos,\nMartín\n",
            mails=[(ury_note, "")],
        ),
        "URY",
        "delegation",
        category=cat,
        lang="es",
    )
    forms = [
        pdf(f"Formulario {letter}.pdf", f"Formulario {letter}", ["Colombia", "2016"])
        for letter in "ABCDE"
    ]
    yield case(
        "zip-of-pdfs-with-note-in-body-es",
        message(
            "Misión de Colombia en Ginebra <eginebra@cancilleria.gov.co>",
            "Informe artículo 7 - Colombia - formularios",
            _nv("es", "Misión Permanente de Colombia", ARTICLE7["es"], "Colombia", "de Colombia"),
            files=[zipped("Informe_Art7_Colombia_2016.zip", forms)],
        ),
        "COL",
        "article7",
        category=cat,
        lang="es",
    )
    malta_note = pdf(
        "NV 2017-77.pdf",
        "Permanent Mission of Malta",
        [note("en", "Permanent Mission of Malta", DELEGATION["en"].format(state="Malta"))],
    )
    yield case(
        "zip-only-evidence-en",
        message(
            "Malta Mission <maltamission.geneva@gmail.com>",
            "Documents",
            "Please find attached.\n",
            files=[
                zipped(
                    "documents.zip", [malta_note, _delegation_pdf("en", "Malta", "", "list.pdf")]
                )
            ],
        ),
        "MLT",
        "delegation",
        category=cat,
    )
    yield case(
        "odt-note-es",
        message(
            "Misión de Bolivia <misionbolivia.ginebra@gmail.com>",
            "Nota verbal",
            "Adjunto nota verbal.\n",
            files=[
                odt(
                    "NV-MPB-0231-2017.odt",
                    [
                        "MPB-GVA-0231/2017",
                        note(
                            "es",
                            "Misión Permanente del Estado Plurinacional de Bolivia",
                            DELEGATION["es"].format(of_state="de Bolivia"),
                        ),
                    ],
                )
            ],
        ),
        "BOL",
        "delegation",
        category=cat,
        lang="es",
    )
    yield case(
        "rtf-note-es",
        message(
            "Misión de Honduras <honduras.ginebra@yahoo.com>",
            "Nota verbal",
            "Adjuntamos nota verbal.\n",
            files=[
                rtf(
                    "Nota verbal 112-2017.rtf",
                    [
                        note(
                            "es",
                            "Misión Permanente de Honduras",
                            ARTICLE7["es"].format(of_state="de Honduras"),
                        )
                    ],
                )
            ],
        ),
        "HND",
        "article7",
        category=cat,
        lang="es",
    )
    yield case(
        "scanned-note-fr",
        message(
            "Mission du Togo <missiontogo.geneve@gmail.com>",
            "Note verbale",
            "Veuillez trouver ci-joint la note verbale.\n",
            files=[
                scan(
                    "scan0001.pdf",
                    "REPUBLIQUE TOGOLAISE - Mission permanente a Geneve",
                    [
                        "N/Ref: 0145/MPTG/2017",
                        "La Mission permanente de la Republique togolaise aupres de l'Office",
                        "des Nations Unies a Geneve presente ses compliments au secretariat",
                        "de la Convention sur les armes a sous-munitions et a l'honneur de",
                        "lui transmettre ci-joint la composition de la delegation du Togo a",
                        "la septieme Assemblee des Etats parties.",
                        "",
                        "Chef de delegation : S.E. M. Koffi Adjovi, Ambassadeur",
                    ],
                )
            ],
        ),
        "TGO",
        "delegation",
        category=cat,
        lang="fr",
    )


@_group
def pending_formats() -> Iterator[Case]:
    """Cases for .doc, .msg and TNEF, once ``PENDING_FORMATS`` has a builder for them."""
    paragraphs = [
        note("en", "Permanent Mission of Slovenia", DELEGATION["en"].format(state="Slovenia"))
    ]
    for fmt, builder in PENDING_FORMATS.items():
        if builder is None:
            continue
        yield case(
            f"{fmt}-note-en",
            message(
                "Slovenian Mission <slovenia.mission.gva@gmail.com>",
                "Note verbale",
                "Please see the attached note.\n",
                files=[builder(f"Note verbale.{fmt}", paragraphs)],
            ),
            "SVN",
            "delegation",
            category="format",
        )


# =============================================================================
# Mission mail as Outlook and gateways send it: never spam, never list
# =============================================================================

_OUTLOOK_HEADERS = [
    ("Thread-Topic", "Norway - Article 7 report 2016"),
    ("Thread-Index", "AdMU3gRkz3Y1mCxXQxqB9bq8lA5e4Q=="),
    ("Accept-Language", "en-US, nb-NO"),
    ("Content-Language", "en-US"),
    ("X-MS-Has-Attach", "yes"),
    ("X-MS-TNEF-Correlator", ""),
    ("X-Auto-Response-Suppress", "All"),
    ("X-MS-Exchange-Organization-SCL", "-1"),
    ("X-Forefront-Antispam-Report", "SFV:NSPM;SFS:(10009020);DIR:OUT;SFP:1102;"),
    ("X-Spam-Status", "No, score=-1.9 required=5.0 tests=BAYES_00,DKIM_SIGNED"),
    ("X-Spam-Level", ""),
    ("X-Spam-Score", "-1.9"),
]


@_group
def mission_mail_with_filter_headers() -> Iterator[Case]:
    cat = "headers"
    yield case(
        "outlook-exchange-headers-nor-en",
        message(
            "Norway Mission Geneva <delgen@mfa.no>",
            "Norway - Article 7 report 2016",
            _nv("en", "Permanent Mission of Norway", ARTICLE7["en"], "Norway"),
            files=[xlsx("NOR_CCM_Art7_2016.xlsx", article7_sheets("en", "Norway"))],
            headers=_OUTLOOK_HEADERS,
        ),
        "NOR",
        "article7",
        category=cat,
    )
    yield case(
        "spam-score-below-threshold-esp-es",
        message(
            "Representación Permanente de España <rep.ginebra@maec.es>",
            "Delegación de España - 7REP",
            _nv("es", "Misión Permanente de España", DELEGATION["es"], "España", "de España"),
            files=[_delegation_pdf("es", "España", "de España", "Delegacion Espana.pdf")],
            headers=[
                ("X-Spam-Status", "No, score=4.2 required=5.0 tests=HTML_MESSAGE,RDNS_NONE"),
                ("X-Spam-Level", "****"),
                ("X-Spam-Score", "4.2"),
            ],
        ),
        "ESP",
        "delegation",
        category=cat,
        lang="es",
    )


# =============================================================================
# Robots: out-of-office, bounces, lists, spam. Never filed, never answered.
# =============================================================================

_DATE = "Mon, 14 Aug 2017 09:30:00 +0000"


def _dsn(
    reporter: str,
    subject: str,
    human: list[str],
    recipient: str,
    status: str,
    action: str,
    *,
    mid: str,
) -> bytes:
    """A delivery status notification (RFC 3464) as Postfix writes it, for a reminder we sent."""
    return raw_lines(
        [
            "Return-Path: <>",
            f"From: Mail Delivery System <MAILER-DAEMON@{reporter}>",
            "To: ccm@unog.ch",
            f"Subject: {subject}",
            f"Date: {_DATE}",
            f"Message-ID: <{mid}@{reporter}>",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"',
            "",
            "--B0UND",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            *human,
            "",
            "--B0UND",
            "Content-Type: message/delivery-status",
            "",
            f"Reporting-MTA: dns; {reporter}",
            "",
            f"Final-Recipient: rfc822; {recipient}",
            f"Action: {action}",
            f"Status: {status}",
            "",
            "--B0UND",
            "Content-Type: text/rfc822-headers",
            "",
            "From: CCM Secretariat <ccm@unog.ch>",
            f"To: {recipient}",
            "Subject: Reminder: details of delegations for the 7MSP are due on 18 August 2017",
            "",
            "--B0UND--",
        ]
    )


def _plain_robot(sender: str, subject: str, body: str, headers: list[str], mid: str) -> bytes:
    """A one-part mail written line by line, with the headers robots add."""
    return raw_lines(
        [
            f"From: {sender}",
            "To: ccm@unog.ch",
            f"Subject: {subject}",
            f"Date: {_DATE}",
            f"Message-ID: <{mid}@golden.example>",
            *headers,
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            *body.split("\n"),
        ]
    )


@_group
def robots() -> Iterator[Case]:
    cat = "automatic"
    # ---- out of office
    yield case(
        "oof-auto-submitted-en",
        message(
            "Kari Nordmann <kari.nordmann@mfa.no>",
            "Automatic reply: Reminder: details of delegations for the 7MSP due 18 August",
            "I am out of the office until 21 August 2017 with limited access to e-mail. For "
            "urgent matters regarding the delegation to the Meeting of States Parties, please "
            "contact delgen@mfa.no.\n",
            headers=[("Auto-Submitted", "auto-replied")],
        ),
        None,
        "auto_reply",
        category=cat,
    )
    yield case(
        "oof-subject-only-fr",
        message(
            "Claire Martin <claire.martin@diplomatie.gouv.fr>",
            "Réponse automatique : Rappel - composition des délégations (7e AEP)",
            "Je suis absente du bureau jusqu'au 28 août. Pour toute question relative à la "
            "composition de la délégation française, veuillez contacter "
            "dfra.geneve@diplomatie.gouv.fr.\n",
        ),
        None,
        "auto_reply",
        category=cat,
        lang="fr",
    )
    yield case(
        "oof-x-autoreply-es",
        message(
            "Lucía Paredes <lparedes@rree.gob.pe>",
            "Respuesta automática: Recordatorio - informe del artículo 7",
            "Me encuentro fuera de la oficina hasta el 21 de agosto. Para asuntos relacionados "
            "con el informe de transparencia, sírvase escribir a onuginebra@rree.gob.pe.\n",
            headers=[("X-Autoreply", "yes"), ("Precedence", "auto_reply")],
        ),
        None,
        "auto_reply",
        category=cat,
        lang="es",
    )
    yield case(
        "oof-exchange-inbox-rule-en",
        message(
            "Laura Brennan <laura.brennan@dfa.ie>",
            "RE: Reminder: Article 7 transparency report due 30 April",
            "Thank you for your email. I am currently on leave and will respond on my return "
            "on 2 May. For Article 7 matters please contact genevapmun@dfa.ie.\n",
            headers=[
                ("In-Reply-To", "<reminder-2017-04-18-irl@unog.ch>"),
                ("X-Auto-Response-Suppress", "All"),
                ("X-MS-Exchange-Inbox-Rules-Loop", "laura.brennan@dfa.ie"),
            ],
        ),
        None,
        "auto_reply",
        category=cat,
    )
    yield case(
        "read-receipt-fr",
        _plain_robot(
            "Mission permanente du Sénégal <mission.geneve@diplomatie.gouv.sn>",
            "Lu : Rappel : rapport de transparence au titre de l'article 7",
            "Votre message\n\n  À : mission.geneve@diplomatie.gouv.sn\n  Objet : Rappel : "
            "rapport de transparence au titre de l'article 7\n\na été lu le 19/04/2017 10:12.",
            [],
            "read-receipt-sen",
        ),
        None,
        "auto_reply",
        category=cat,
        lang="fr",
    )
    # ---- bounces
    yield case(
        "bounce-postfix-dsn-en",
        _dsn(
            "mx.mfa.example",
            "Undelivered Mail Returned to Sender",
            [
                "This is the mail system at host mx.mfa.example.",
                "",
                "I'm sorry to have to inform you that your message could not",
                "be delivered to one or more recipients.",
                "",
                "<old.desk@mfa.example>: host mx.mfa.example said: 550 5.1.1 User unknown",
            ],
            "old.desk@mfa.example",
            "5.1.1",
            "failed",
            mid="dsn-postfix",
        ),
        None,
        "bounce",
        category=cat,
    )
    yield case(
        "bounce-delayed-en",
        _dsn(
            "mail.gov.example",
            "Delayed Mail (still being retried)",
            [
                "This is the mail system at host mail.gov.example.",
                "",
                "####################################################################",
                "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
                "####################################################################",
                "",
                "<registry@gov.example>: connect to mx.gov.example: Connection timed out",
            ],
            "registry@gov.example",
            "4.4.1",
            "delayed",
            mid="dsn-delayed",
        ),
        None,
        "bounce",
        category=cat,
    )
    yield case(
        "bounce-exchange-text-en",
        _plain_robot(
            "Microsoft Outlook <postmaster@mfa.example>",
            "Undeliverable: Reminder: details of delegations for the 7MSP are due on 18 August",
            "Delivery has failed to these recipients or groups:\n\n"
            "Disarmament Desk (disarmament.desk@mfa.example)\n"
            "The e-mail address you entered couldn't be found. Please check the recipient's "
            "e-mail address and try to resend the message.\n\n"
            "Diagnostic information for administrators:\n\nGenerating server: mx1.mfa.example\n"
            "disarmament.desk@mfa.example\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##",
            [],
            "ndr-exchange",
        ),
        None,
        "bounce",
        category=cat,
    )
    yield case(
        "bounce-exchange-text-fr",
        _plain_robot(
            "Microsoft Outlook <postmaster@diplomatie.example>",
            "Non remis : Rappel - composition des délégations (7e AEP)",
            "La remise a échoué pour ces destinataires ou groupes :\n\n"
            "ancien.conseiller@diplomatie.example\n"
            "L'adresse de messagerie que vous avez entrée est introuvable.\n\n"
            "Informations de diagnostic pour les administrateurs :\n\n"
            "Serveur de génération : mx.diplomatie.example\n#550 5.1.1 ##",
            [],
            "ndr-fr",
        ),
        None,
        "bounce",
        category=cat,
        lang="fr",
    )
    yield case(
        "bounce-gmail-text-en",
        _plain_robot(
            "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            "Delivery Status Notification (Failure)",
            "Delivery to the following recipient failed permanently:\n\n"
            "     mission.geneva.old@gmail.com\n\n"
            "Technical details of permanent failure:\nThe email account that you tried to reach "
            "does not exist.\n\n----- Original message -----\n\nFrom: ccm@unog.ch\n"
            "To: mission.geneva.old@gmail.com\nSubject: Reminder",
            ["Return-Path: <>"],
            "gmail-failure",
        ),
        None,
        "bounce",
        category=cat,
    )
    yield case(
        "bounce-exchange-text-es",
        _plain_robot(
            "Microsoft Outlook <postmaster@cancilleria.example>",
            "No se puede entregar: Recordatorio - informe del artículo 7",
            "Error en la entrega a estos destinatarios o grupos:\n\n"
            "antiguo.delegado@cancilleria.example\n"
            "No se encontró la dirección de correo electrónico que especificó.\n",
            [],
            "ndr-es",
        ),
        None,
        "bounce",
        category=cat,
        lang="es",
    )
    # ---- lists and newsletters
    yield case(
        "list-newsletter-en",
        message(
            "UNIDIR <newsletter@unidir.example>",
            "UNIDIR Newsletter - August 2017: cluster munitions, Article 7 reporting",
            "In this issue: the Seventh Meeting of States Parties to the Convention on Cluster "
            "Munitions; lessons from Article 7 transparency reports; delegations' guide to "
            "Geneva.\n\nTo unsubscribe, click here.\n",
            headers=[
                ("List-Id", "UNIDIR news <news.unidir.example>"),
                ("List-Unsubscribe", "<mailto:leave-news@unidir.example>"),
                ("Precedence", "bulk"),
            ],
        ),
        None,
        "list",
        category=cat,
    )
    yield case(
        "list-mailman-digest-en",
        message(
            "disarmament-l-request@lists.example.org",
            "Disarmament-L Digest, Vol 112, Issue 9",
            "Today's Topics:\n\n   1. Re: delegation lists for the 7MSP (J. Doe)\n"
            "   2. Article 7 report templates (A. Smith)\n",
            headers=[
                ("List-Id", "Disarmament discussion <disarmament-l.lists.example.org>"),
                ("List-Post", "<mailto:disarmament-l@lists.example.org>"),
                ("Precedence", "list"),
            ],
        ),
        None,
        "list",
        category=cat,
    )
    yield case(
        "list-google-group-fr",
        message(
            "Réseau ONG Genève <reseau-ong-geneve@googlegroups.com>",
            "[reseau-ong] Rapports article 7 : état des lieux avant la 7e AEP",
            "Chers collègues, voici l'état des rapports au titre de l'article 7 soumis par les "
            "États parties.\n",
            headers=[
                ("List-Id", "<reseau-ong-geneve.googlegroups.com>"),
                ("Mailing-List", "list reseau-ong-geneve@googlegroups.com"),
            ],
        ),
        None,
        "list",
        category=cat,
        lang="fr",
    )
    # ---- spam
    yield case(
        "spam-flag-en",
        message(
            "Dr. Frank Okonkwo <claims.office@lottery-winners.example>",
            "CONGRATULATIONS!!! Your email has won USD 2,500,000",
            "Dear Beneficiary, your e-mail address was selected in the UN compensation "
            "programme. Send your bank details to claim your prize.\n",
            headers=[("X-Spam-Flag", "YES"), ("X-Spam-Status", "Yes, score=17.3 required=5.0")],
        ),
        None,
        "spam",
        category=cat,
    )
    yield case(
        "spam-status-delegation-words-en",
        message(
            "Conference Visa Services <info@visa-delegates.example>",
            "Visa and hotel for your delegation to the Meeting of States Parties",
            "Dear delegates, we offer fast visa and hotel packages for all delegations "
            "attending meetings in Geneva. Head of delegation discounts available!\n",
            headers=[("X-Spam-Status", "Yes, score=9.1 required=5.0 tests=FREEMAIL_FROM")],
        ),
        None,
        "spam",
        category=cat,
    )
    yield case(
        "spam-score-only-en",
        message(
            "Pharmacy <sales@cheap-meds.example>",
            "Best prices",
            "Best prices on all products.\n",
            headers=[("X-Spam-Score", "12.4")],
        ),
        None,
        "spam",
        category=cat,
    )
    yield case(
        "spam-gtube-en",
        message(
            "tester@example.org",
            "Test",
            "This is the GTUBE, the\n\tGeneric\n\tTest for\n\tUnsolicited\n\tBulk\n\tEmail\n\n"
            "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n",
        ),
        None,
        "spam",
        category=cat,
    )


# =============================================================================
# Not sure who: the clerk looks (review), or it is nobody's submission
# =============================================================================


@_group
def not_sure() -> Iterator[Case]:
    cat = "review"
    yield case(
        "unsigned-delegation-freemail-en",
        message(
            "d.smith1972@gmail.com",
            "delegation list",
            "Dear Secretariat,\n\nPlease find attached our delegation list for the Meeting of "
            "States Parties in September.\n\nBest regards,\nDavid\n",
            files=[
                pdf(
                    "delegation.pdf",
                    "Delegation",
                    ["Head of delegation: Mr D. Smith", "Adviser: Ms A. Jones"],
                )
            ],
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "only-country-in-signature-en",
        message(
            "Anna Keller <anna.keller.gva@gmail.com>",
            "Registration - 7MSP",
            "Dear Secretariat,\n\nPlease find below our delegation for the Seventh Meeting of "
            "States Parties.\n\nHead of delegation: Ms Anna Keller\nAdviser: Mr Paul Frey\n\n"
            "Anna Keller\nRue de Lausanne 45, 1201 Geneva, Switzerland\n",
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "eu-delegation-not-a-state-en",
        message(
            "EU Delegation Geneva <delegation-geneva@eeas.europa.eu>",
            "7MSP - composition of the EU delegation (observer)",
            "The Delegation of the European Union to the United Nations Office and other "
            "international organisations in Geneva presents its compliments to the secretariat "
            "of the Convention on Cluster Munitions and has the honour to transmit the "
            "composition of its delegation to the Seventh Meeting of States Parties.\n\n"
            "Head of delegation: H.E. Mr. Jan Kowalski, Ambassador\n",
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "icrc-participants-not-a-state-en",
        message(
            "ICRC Arms Unit <arms.unit@icrc.org>",
            "ICRC delegation to the Seventh Meeting of States Parties",
            "Dear Secretariat,\n\nThe International Committee of the Red Cross will be "
            "represented at the 7MSP by the following delegation:\n\nHead of delegation: Ms "
            "Marie Dubois\nAdviser: Mr Stefan Huber\n\nKind regards,\nICRC, Geneva\n",
        ),
        None,
        "delegation",
        review=True,
        category=cat,
    )
    yield case(
        "weak-mission-mention-freemail-en",
        message(
            "J. Alvarez <j.alvarez.gva@gmail.com>",
            "Article 7 report",
            "Dear Secretariat,\n\nI attach the Article 7 report. I work with the Permanent "
            "Mission of Costa Rica and will confirm the official transmission next week.\n\n"
            "Regards,\nJ. Alvarez\n",
            files=[xlsx("Informe art 7.xlsx", article7_sheets("es", ""))],
        ),
        None,
        "article7",
        review=True,
        category=cat,
    )


# =============================================================================
# Comparing a decision with a case
# =============================================================================

Decision = tuple[str | None, str, bool, bool]  # (state, kind, ack, review)


def expected(c: Case) -> Decision:
    return (c.state, c.kind, c.ack, c.review)


def observed(summary: dict[str, object]) -> Decision:
    """The same four things from ``Analysis.summary()`` (``ccm-intake classify --json``)."""
    kinds = summary["kinds"]
    assert isinstance(kinds, list)
    kind = "+".join(sorted(str(k) for k in kinds)) if kinds else str(summary["kind"])
    state = summary["state"]
    return (
        None if state is None else str(state),
        kind,
        bool(summary["ack"]),
        bool(summary["review"]),
    )


def confidently_wrong(c: Case, got: Decision) -> bool:
    """Filed under a State the clerk would not file it under: the worst error there is."""
    return got[0] is not None and got[0] != c.state
