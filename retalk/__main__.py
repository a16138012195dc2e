from retalk._cli.main import main

raise SystemExit(main())
