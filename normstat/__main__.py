from normstat.cli import main

main()
