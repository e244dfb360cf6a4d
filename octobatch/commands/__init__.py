"""One module per subcommand, each exposing `main(args: argparse.Namespace) -> int`."""
