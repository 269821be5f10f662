"""Complete schemas, one per schema library, each with a query, a mutation that broadcasts and
a subscription fed by ``gqlchannels.listen``. The README shows these files as they are (a test
keeps the two the same) and the tests drive each over both protocols."""
