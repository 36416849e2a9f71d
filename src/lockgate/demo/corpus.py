"""A synthetic support-desk corpus for the examples and `lockgate demo`: articles and transcripts.

No model or dataset may be downloaded at run time, so the examples' LLM-era
workloads run on text generated here, deterministically from a day string:
a knowledge base of help-centre articles in four product areas and two
languages, and a day of support transcripts (question, retrieved context,
the bot's answer, a reference phrase the answer must contain) with cohorts
(product area, language) to slice scores by.

Most answers restate the article they retrieved, so they are grounded;
`hallucination_rate` of them state something the context does not say, which
is what Groundedness and TaskCompletion exist to catch. Retrieval here is
simulated (the right article plus one from another area); the
`index_rebuild` example does real retrieval over `knowledge_base()`.

Pure Python, no imports beyond the standard library: cheap to call in a task.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AREAS", "LANGUAGES", "Article", "articles", "knowledge_base", "transcripts"]

AREAS = ("billing", "shipping", "account", "returns")
LANGUAGES = ("en", "es")


@dataclass(frozen=True, slots=True)
class Article:
    """One help-centre article: the passage retrieval returns, and the fact it states.

    Attributes:
        id: stable id, `<area>-<n>-<language>`.
        area: product area (a cohort).
        language: `en` or `es` (a cohort).
        question: how customers ask about it.
        text: the passage.
        answer: a correct, grounded answer.
        reference: the phrase a complete answer must contain.
    """

    id: str
    area: str
    language: str
    question: str
    text: str
    answer: str
    reference: str


# (area, question, passage, answer, reference) in English, then in Spanish.
_FACTS: dict[str, list[tuple[str, str, str, str, str]]] = {
    "en": [
        (
            "billing",
            "When will I be charged for my subscription?",
            "Subscriptions are charged on the first day of each billing month. The charge "
            "appears on your statement within two business days.",
            "You are charged on the first day of each billing month.",
            "first day of each billing month",
        ),
        (
            "billing",
            "Can I pay with a bank transfer?",
            "We accept credit cards, debit cards and bank transfers. Bank transfers take up "
            "to three business days to clear.",
            "Yes, bank transfers are accepted and take up to three business days to clear.",
            "three business days",
        ),
        (
            "billing",
            "How do I get an invoice?",
            "Invoices are emailed to the account owner after every payment. You can also "
            "download them from the Billing page in your account settings.",
            "Invoices are emailed to the account owner after every payment.",
            "emailed to the account owner",
        ),
        (
            "shipping",
            "How long does standard shipping take?",
            "Standard shipping takes five to seven business days. Express shipping arrives "
            "within two business days.",
            "Standard shipping takes five to seven business days.",
            "five to seven business days",
        ),
        (
            "shipping",
            "Do you ship internationally?",
            "We ship to over forty countries. International orders may be subject to customs "
            "fees charged by the destination country.",
            "Yes, we ship to over forty countries; customs fees may apply.",
            "forty countries",
        ),
        (
            "shipping",
            "How can I track my order?",
            "Every order gets a tracking number by email once it leaves the warehouse. Enter "
            "the number on the carrier's website to follow the parcel.",
            "You get a tracking number by email once the order leaves the warehouse.",
            "tracking number",
        ),
        (
            "account",
            "How do I reset my password?",
            "To reset your password, click Forgot password on the sign-in page. We send a "
            "reset link that is valid for one hour.",
            "Click Forgot password on the sign-in page; the reset link is valid for one hour.",
            "forgot password",
        ),
        (
            "account",
            "Can I change the email address on my account?",
            "You can change your email address under Profile in account settings. We send a "
            "confirmation message to the new address.",
            "Yes, change it under Profile in account settings and confirm the new address.",
            "profile",
        ),
        (
            "account",
            "How do I turn on two-factor authentication?",
            "Two-factor authentication is turned on under Security in account settings. You "
            "can use an authenticator app or text messages.",
            "Turn it on under Security in account settings.",
            "security",
        ),
        (
            "returns",
            "How long do I have to return an item?",
            "Items can be returned within thirty days of delivery. They must be unused and "
            "in their original packaging.",
            "You can return items within thirty days of delivery.",
            "thirty days",
        ),
        (
            "returns",
            "When will I get my refund?",
            "Refunds are issued to the original payment method within five business days of "
            "receiving the returned item.",
            "Refunds reach your original payment method within five business days.",
            "five business days",
        ),
        (
            "returns",
            "Do I have to pay for return shipping?",
            "Return shipping is free for defective items. For other returns a flat fee of "
            "five dollars is deducted from the refund.",
            "Return shipping is free for defective items; otherwise a five dollar fee applies.",
            "five dollar",
        ),
    ],
    "es": [
        (
            "billing",
            "¿Cuándo se cobra mi suscripción?",
            "Las suscripciones se cobran el primer día de cada mes de facturación. El cargo "
            "aparece en su extracto en dos días hábiles.",
            "Se cobra el primer día de cada mes de facturación.",
            "primer día",
        ),
        (
            "billing",
            "¿Puedo pagar con transferencia bancaria?",
            "Aceptamos tarjetas de crédito, tarjetas de débito y transferencias bancarias. "
            "Las transferencias tardan hasta tres días hábiles.",
            "Sí, aceptamos transferencias bancarias; tardan hasta tres días hábiles.",
            "tres días hábiles",
        ),
        (
            "billing",
            "¿Cómo obtengo una factura?",
            "Las facturas se envían por correo al titular de la cuenta después de cada pago.",
            "Las facturas se envían por correo al titular de la cuenta después de cada pago.",
            "titular de la cuenta",
        ),
        (
            "shipping",
            "¿Cuánto tarda el envío estándar?",
            "El envío estándar tarda de cinco a siete días hábiles. El envío exprés llega en "
            "dos días hábiles.",
            "El envío estándar tarda de cinco a siete días hábiles.",
            "cinco a siete días",
        ),
        (
            "shipping",
            "¿Hacen envíos internacionales?",
            "Enviamos a más de cuarenta países. Los pedidos internacionales pueden pagar "
            "aranceles en el país de destino.",
            "Sí, enviamos a más de cuarenta países.",
            "cuarenta países",
        ),
        (
            "shipping",
            "¿Cómo puedo seguir mi pedido?",
            "Cada pedido recibe un número de seguimiento por correo cuando sale del almacén.",
            "Recibirá un número de seguimiento por correo cuando el pedido salga del almacén.",
            "número de seguimiento",
        ),
        (
            "account",
            "¿Cómo restablezco mi contraseña?",
            "Para restablecer la contraseña, pulse Olvidé mi contraseña en la página de "
            "inicio de sesión. El enlace es válido durante una hora.",
            "Pulse Olvidé mi contraseña en la página de inicio de sesión.",
            "olvidé mi contraseña",
        ),
        (
            "account",
            "¿Puedo cambiar el correo de mi cuenta?",
            "Puede cambiar su correo en Perfil, dentro de la configuración de la cuenta.",
            "Sí, cámbielo en Perfil, dentro de la configuración de la cuenta.",
            "perfil",
        ),
        (
            "account",
            "¿Cómo activo la verificación en dos pasos?",
            "La verificación en dos pasos se activa en Seguridad, dentro de la configuración "
            "de la cuenta.",
            "Actívela en Seguridad, dentro de la configuración de la cuenta.",
            "seguridad",
        ),
        (
            "returns",
            "¿Cuánto tiempo tengo para devolver un artículo?",
            "Los artículos se pueden devolver en un plazo de treinta días desde la entrega.",
            "Puede devolver artículos en un plazo de treinta días desde la entrega.",
            "treinta días",
        ),
        (
            "returns",
            "¿Cuándo recibiré mi reembolso?",
            "Los reembolsos se emiten al método de pago original en cinco días hábiles.",
            "El reembolso llega a su método de pago original en cinco días hábiles.",
            "cinco días hábiles",
        ),
        (
            "returns",
            "¿Tengo que pagar el envío de la devolución?",
            "El envío de la devolución es gratuito para artículos defectuosos.",
            "Es gratuito para artículos defectuosos.",
            "gratuito",
        ),
    ],
}

# Confident answers the retrieved context does not support.
_UNGROUNDED = {
    "en": [
        "Our premium plan includes a lifetime warranty on every purchase.",
        "You will receive a gift card worth ten percent of your order.",
        "Orders placed on weekends are always delivered the next morning.",
        "We can only answer this question by phone on Tuesdays.",
    ],
    "es": [
        "Nuestro plan premium incluye garantía de por vida en cada compra.",
        "Recibirá una tarjeta regalo del diez por ciento de su pedido.",
        "Los pedidos del fin de semana se entregan siempre a la mañana siguiente.",
    ],
}

_PREFIXES = {
    "en": ("", "Hi, ", "Hello! ", "Quick question: "),
    "es": ("", "Hola, ", "Buenas, "),
}


def articles() -> list[Article]:
    """Every article, in a fixed order."""
    found = []
    for language, facts in _FACTS.items():
        counters: dict[str, int] = {}
        for area, question, text, answer, reference in facts:
            counters[area] = counters.get(area, 0) + 1
            found.append(
                Article(
                    id=f"{area}-{counters[area]}-{language}",
                    area=area,
                    language=language,
                    question=question,
                    text=text,
                    answer=answer,
                    reference=reference,
                )
            )
    return found


def knowledge_base() -> list[dict[str, Any]]:
    """The articles as plain rows (`id`, `area`, `language`, `text`, ...), JSON-able."""
    return [asdict(article) for article in articles()]


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - not for security


def transcripts(
    day: str,
    n: int = 120,
    *,
    hallucination_rate: float = 0.05,
    spanish_share: float = 0.3,
) -> list[dict[str, Any]]:
    """One day of support transcripts, the same for the same arguments.

    Args:
        day: the day they happened (`2026-11-24`); seeds everything.
        n: how many.
        hallucination_rate: share of answers stating something the context
            does not support.
        spanish_share: share of conversations in Spanish.

    Returns:
        Rows with `id`, `day`, `product_area`, `language`, `question`,
        `context` (two passages: the right article and one from another area),
        `answer`, `reference` and `article_id`.

    Raises:
        ValueError: `n` < 1 or a share outside [0, 1].
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    for name, share in (
        ("hallucination_rate", hallucination_rate),
        ("spanish_share", spanish_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {share}")
    rng = _rng("transcripts", day, n, hallucination_rate, spanish_share)
    by_language: dict[str, list[Article]] = {}
    for article in articles():
        by_language.setdefault(article.language, []).append(article)
    rows = []
    for i in range(n):
        language = "es" if rng.random() < spanish_share else "en"
        pool = by_language[language]
        article = rng.choice(pool)
        distractor = rng.choice([a for a in pool if a.area != article.area])
        context = [article.text, distractor.text]
        rng.shuffle(context)
        hallucinated = rng.random() < hallucination_rate
        answer = rng.choice(_UNGROUNDED[language]) if hallucinated else article.answer
        rows.append(
            {
                "id": f"{day}-{i:04d}",
                "day": day,
                "product_area": article.area,
                "language": language,
                "question": rng.choice(_PREFIXES[language]) + article.question,
                "context": context,
                "answer": answer,
                "reference": article.reference,
                "article_id": article.id,
            }
        )
    return rows
