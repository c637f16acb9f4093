"""mcp-reconciler: one git repository as the source of truth for MCP server configurations."""

__version__ = "0.1.0"
