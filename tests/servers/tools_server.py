"""A well-behaved server: five tools with every kind of annotation, paginated, plus
prompts and resources. Serves stdio, or ``--http`` / ``--sse`` [``--token T``]."""

from _common import build, serve

if __name__ == "__main__":
    serve(build("tools-server"))
