local lead, follow = claim(ARGV, 1)
return {lead, follow}
