"""The agent framework: model backends, tools, context management and the agent loop.

```python
from rollcage import Sandbox
from rollcage.agent import Agent, OpenAIBackend

agent = Agent(OpenAIBackend("http://127.0.0.1:8000/v1", model="qwen"), max_turns=20, context_budget=32_000)
with Sandbox() as sb:
    trajectory = agent.run("Write hello.py that prints hello", sb)
print(trajectory.status, trajectory.to_json(indent=1))
```
"""

from rollcage.agent.backends import ModelBackend, ScriptedBackend, SyncBackend, to_tool_call
from rollcage.agent.context import ContextManager, FitStats
from rollcage.agent.loop import DEFAULT_SYSTEM_PROMPT, Agent, Observation, Step, Trajectory
from rollcage.agent.openai_backend import OpenAIBackend, parse_chat_completion
from rollcage.agent.text_protocol import TextProtocolBackend, parse_tool_calls
from rollcage.agent.tools import (
    BashTool,
    EditTool,
    ListDirTool,
    ReadFileTool,
    SubmitTool,
    Tool,
    Toolbox,
    ToolContext,
    ToolError,
    ToolResult,
    WriteFileTool,
    default_tools,
    truncate,
)
from rollcage.agent.types import Message, ModelError, ModelReply, ToolCall, Usage

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "Agent",
    "BashTool",
    "ContextManager",
    "EditTool",
    "FitStats",
    "ListDirTool",
    "Message",
    "ModelBackend",
    "ModelError",
    "ModelReply",
    "Observation",
    "OpenAIBackend",
    "ReadFileTool",
    "ScriptedBackend",
    "Step",
    "SubmitTool",
    "SyncBackend",
    "TextProtocolBackend",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "Toolbox",
    "Trajectory",
    "TransformersBackend",
    "Usage",
    "WriteFileTool",
    "default_tools",
    "parse_chat_completion",
    "parse_tool_calls",
    "to_tool_call",
    "truncate",
]


def __getattr__(name: str):  # TransformersBackend lives apart so importing rollcage.agent never needs torch
    if name == "TransformersBackend":
        from rollcage.agent.local import TransformersBackend

        return TransformersBackend
    raise AttributeError(f"module 'rollcage.agent' has no attribute {name!r}")
