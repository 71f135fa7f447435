import greet

print(greet.hello("world"))
