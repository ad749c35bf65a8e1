from attribution.interrupts import main

main()
