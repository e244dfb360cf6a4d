from octobatch.cli import main

raise SystemExit(main())
