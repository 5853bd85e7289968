create(ARGV, 1)
