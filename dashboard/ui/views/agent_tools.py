"""Agent & tools: trajectories, approvals and tool calls per slice."""

from dashboard.ui.area import area_page

area_page("Agent & tools", "Agents are judged by their path, not only their final answer.",
          ("trajectory_success_rate", "required_node_completion_rate", "max_step_failure_rate", "approval_bypasses",
           "forbidden_tool_calls", "unauthorized_tool_calls", "avg_agent_steps", "approval_trace_completeness"),
          "agent")
