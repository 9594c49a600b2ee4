"""The concept branch: a concept pack (HatCat's first-light) read from its archive, validated,
turned into prompts with a grouped split, and (later) one lens per concept."""
