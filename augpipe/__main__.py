from augpipe.cli.main import entry

entry()
