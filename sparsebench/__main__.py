from sparsebench.cli import main

raise SystemExit(main())
