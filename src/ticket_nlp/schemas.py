"""The API's contract: request and response models, as clients see them in /openapi.json.

Field descriptions and examples are written for the people generating clients from the schema;
labels are a closed enum, limits are part of the schema, and every error has one shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ticket_nlp.config import MAX_BATCH_ITEMS, MAX_TEXT_CHARS

Label = Literal["quality_defect", "size_exchange", "logistics", "no_reason_return", "other"]
MismatchStatus = Literal["consistent", "mismatch", "not_claimed", "unknown_reason", "insufficient_text"]


class ClassifyRequest(BaseModel):
    """One after-sales ticket: the buyer's description and, if known, the reason they picked."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"text": "收到就发现袖口开线了，要求退货", "claimed_reason": "七天无理由退货", "ticket_id": "AS-1001",
         "product": "针织开衫"},
    ]})

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS,
                      description=f"问题描述 / 买家退款说明: the buyer's own words, at most {MAX_TEXT_CHARS} characters.")
    claimed_reason: str | None = Field(None, max_length=200,
                                       description="申请原因: the menu string the buyer picked, e.g. 七天无理由退货.")
    ticket_id: str | None = Field(None, max_length=128, description="Your ticket or after-sales id, echoed back.")
    product: str | None = Field(None, max_length=200,
                                description="宝贝标题 / 商品名称 or a category (女装, 水果). It decides LABELING.md's "
                                            "fit rule: a size complaint is size_exchange for clothes and shoes, "
                                            "quality_defect (not as described) for other goods.")


class EvidenceOut(BaseModel):
    term: str = Field(description="The buyer's own characters text[start:end].")
    weight: float = Field(description="How hard this span pushed toward the label.")
    start: int
    end: int


class MismatchOut(BaseModel):
    claimed_reason: str | None
    claimed_label: Label | None = Field(description="The label the claimed reason stands for.")
    claimed_labels: list[Label] = Field(description="Every label the claimed reason accepts.")
    status: MismatchStatus
    severity: Literal["none", "low", "high"] = Field(
        description="high: the contradiction changes who is at fault (seller-side vs buyer-side).")
    evidence: list[EvidenceOut] = Field(description="The words that contradict the claim (when status is mismatch).")


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ticket_id": "AS-1001", "label": "quality_defect", "label_zh": "质量问题",
        "probabilities": {"quality_defect": 0.97, "size_exchange": 0.01, "logistics": 0.0,
                          "no_reason_return": 0.01, "other": 0.01},
        "confidence": 0.97, "needs_review": False,
        "evidence": [{"term": "开线", "weight": 0.74, "start": 7, "end": 9}],
        "mismatch": {"claimed_reason": "七天无理由退货", "claimed_label": "no_reason_return",
                     "claimed_labels": ["no_reason_return"], "status": "mismatch", "severity": "high",
                     "evidence": [{"term": "开线", "weight": 0.74, "start": 7, "end": 9}]},
        "product_family": "wearable",
        "model_version": "20261128093000-1a2b3c4d",
    }]})

    ticket_id: str | None
    label: Label
    label_zh: str
    probabilities: dict[str, float] = Field(description="Calibrated probability of each of the five labels.")
    confidence: float
    needs_review: bool = Field(description="Confidence below the label's review threshold, or too little text.")
    evidence: list[EvidenceOut]
    mismatch: MismatchOut
    product_family: str | None = Field(
        None, description="How the product was read (wearable, not_wearable) when it changed the probabilities; "
                          "null when no product was given or it names no known family.")
    model_version: str


class BatchRequest(BaseModel):
    items: list[ClassifyRequest] = Field(min_length=1, max_length=MAX_BATCH_ITEMS,
                                         description=f"1 to {MAX_BATCH_ITEMS} tickets.")


class BatchResponse(BaseModel):
    model_version: str
    count: int
    results: list[ClassifyResponse] = Field(description="One result per item, in the order given.")


class ModelInfo(BaseModel):
    name: str
    version: str
    source: str = Field(description="The model directory or MLflow URI it was loaded from.")
    trained_at: str | None
    loaded_at: str | None
    labels: list[str]
    labels_zh: dict[str, str]
    thresholds: dict[str, Any] = Field(description="Per-label review thresholds and the mismatch threshold.")
    metrics: dict[str, Any] = Field(description="Figures measured at training time on valid and test.")
    variant: str | None = None
    params: dict[str, Any] = {}


class ReasonOut(BaseModel):
    reason: str
    labels: list[Label]


class ReasonsResponse(BaseModel):
    source: str
    count: int
    refund_type_prefixes: list[str]
    reasons: list[ReasonOut]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model_version: str


class ReloadResponse(BaseModel):
    scope: Literal["this_process", "all_workers"]
    previous_version: str | None
    model_version: str | None = Field(description="The version now in service (this_process only).")
    source: str


class FeedbackRequest(BaseModel):
    """An agent's verdict on one prediction: right (correct_label == predicted) or the right label."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"text": "收到就发现袖口开线了", "claimed_reason": "七天无理由退货", "predicted": "quality_defect",
         "correct_label": "quality_defect", "ticket_id": "AS-1001", "agent": "小王"},
    ]})

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    claimed_reason: str | None = Field(None, max_length=200)
    product: str | None = Field(None, max_length=200, description="The product, as given to /v1/classify.")
    predicted: Label
    correct_label: Label
    ticket_id: str | None = Field(None, max_length=128)
    agent: str | None = Field(None, max_length=100)
    model_version: str | None = Field(None, max_length=64)


class FeedbackAck(BaseModel):
    id: int
    created_at: str


class FeedbackItem(FeedbackRequest):
    id: int
    created_at: str
    correct_label_zh: str


class FeedbackList(BaseModel):
    count: int = Field(description="All corrections stored.")
    items: list[FeedbackItem] = Field(description="The newest first.")


class JobOut(BaseModel):
    id: str
    filename: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="Share of the file read, 0 to 1.")
    rows_done: int
    error: str | None
    created_at: str
    result_url: str | None = Field(description="The scored file (same format as the upload), once done.")
    report_url: str | None = Field(description="The HTML report, once done.")
    summary: dict[str, Any] | None = Field(description="Rows per label, mismatch rate, rows needing review …")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    request_id: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in ((401, "Missing or wrong X-API-Key."), (413, "Request body over the limit."),
                       (422, "Invalid request; the message names the field and the limit."),
                       (503, "No model loaded, or the feedback store is unreachable."))
}
