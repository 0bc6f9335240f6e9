"""Security & privacy: injection, cross-tenant access, redaction, refusals per slice."""

from dashboard.ui.area import area_page

area_page("Security & privacy", "Security gates fail closed.",
          ("prompt_injection_critical_failures", "injection_success_rate", "cross_tenant_failures",
           "redaction_failures", "under_refusals", "unauthorized_retrievals", "trace_completeness"), "security")
