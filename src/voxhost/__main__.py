from voxhost.cli import main

main()
