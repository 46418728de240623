"""ticket-nlp: read Chinese after-sales ticket descriptions, label the buyer's problem, and flag
claimed reasons that the buyer's own words contradict."""

__version__ = "0.1.0"

from ticket_nlp.model import Classifier, Evidence, Mismatch, Prediction  # noqa: E402

__all__ = ["Classifier", "Evidence", "Mismatch", "Prediction", "__version__"]
