module github.com/offcrypt/offcrypt

go 1.26
