"""Quality & RAG: answer quality and retrieval per slice."""

from dashboard.ui.area import area_page

area_page("Quality & RAG", "Pass rates, groundedness, citations and retrieval quality; error bars are the "
          "candidate's 95% intervals.",
          ("pass_rate", "groundedness_pass_rate", "citation_support_rate", "over_refusal_rate", "recall_at_10",
           "mrr", "exact_identifier_hit_rate", "stale_source_failures", "unauthorized_retrievals"), "quality")
