from chatforge.cli import run

run()
