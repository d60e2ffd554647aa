"""detect_language: which of the three languages a mission wrote in, English when unsure."""

from __future__ import annotations

import pytest

from parsers.language import detect_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("La Mission permanente de la France présente ses compliments", "fr"),
        (
            "La Mission permanente du Sénégal auprès de l'Office des Nations Unies à Genève a "
            "l'honneur de transmettre ci-joint la composition de sa délégation.",
            "fr",
        ),
        (
            "La Misión Permanente de Chile ante la Oficina de las Naciones Unidas saluda "
            "atentamente a la Secretaría y tiene el honor de remitir la lista de delegados.",
            "es",
        ),
        (
            "The Permanent Mission of Ghana presents its compliments to the secretariat and has "
            "the honour to transmit the composition of its delegation.",
            "en",
        ),
    ],
)
def test_it_tells_english_french_and_spanish_apart(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_it_ignores_accents_and_case() -> None:
    accented = "VEUILLEZ TROUVER CI-JOINT LA LISTE DES DÉLÉGUÉS POUR LA RÉUNION"
    plain = "veuillez trouver ci-joint la liste des delegues pour la reunion"

    assert detect_language(accented) == detect_language(plain) == "fr"


@pytest.mark.parametrize("text", ["", "7MSP", "Délégation", "Ghana, Chile, France", "de la"])
def test_it_says_english_when_there_is_too_little_to_tell(text: str) -> None:
    assert detect_language(text) == "en"


def test_quoted_lines_do_not_count() -> None:
    text = (
        "Muchas gracias por su atención, saludos cordiales.\n"
        "> We acknowledge receipt of the composition of the delegation of Chile to the 7MSP.\n"
        "> It has been filed and will be published with the list of participants."
    )

    assert detect_language(text) == "es"
